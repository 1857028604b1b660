//! The parts of the Alongside app that more than one front end shares.
//!
//! The `alongside` binary (`main.rs`) is the command line; [`profile_setup`] is how it
//! creates a profile, so that every way of making one makes the same thing.

pub mod profile_setup;
