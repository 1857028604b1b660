//! The Alongside desktop app as a library, so that tests can drive the real window.
//!
//! The `alongside` binary (`main.rs`) parses arguments: with a command it runs the command
//! line, without one it opens the desktop app from [`gui`]. Both create profiles through
//! [`profile_setup`], so a profile made in the window and one made by `alongside init` are
//! the same thing; both export through [`export`].
//!
//! This crate never touches Automerge or key material itself: content comes from
//! `alongside_core`'s typed views and edit inputs.

pub mod export;
pub mod gui;
pub mod meeting_words;
pub mod profile_setup;
