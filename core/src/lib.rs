//! # alongside-core
//!
//! The core of Alongside: identities and keys, group membership, the split of a group's
//! content into signed and sealed Automerge documents, validation of everything received,
//! and the encrypted store. It does no network IO and has no async runtime: `alongside-net`
//! drives it, and `alongside-app` talks to it through typed views.
//!
//! The layers inside, bottom up:
//!
//! - [`wire`]: the bounded binary codec every format is written in;
//! - [`crypto`]: keys and primitives (XChaCha20-Poly1305, Ed25519, HPKE, Argon2id);
//! - [`membership`]: signed membership operations and the state they resolve to;
//! - [`unit`]: sealed units, what travels and what is stored;
//! - [`payload_budget`]: what an untrusted Automerge payload would cost, measured before
//!   Automerge sees it;
//! - [`replica`]: one document with the validation that guards Automerge;
//! - [`model`]: the typed content (stories, goals, meetings, ...) and its views;
//! - [`group`]: one membership of one group, tying the above together;
//! - [`store`] and [`profile`]: the encrypted database and the passphrase-protected profile;
//! - [`vault`]: the unlocked profile, the API the app uses.

pub mod audience;
mod audiences;
pub mod content;
pub mod crypto;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod generation;
pub mod group;
pub mod guard;
pub mod ids;
pub mod invite;
pub mod meeting;
pub mod membership;
pub mod model;
pub mod payload_budget;
pub mod profile;
pub mod replica;
mod roster;
pub mod store;
pub mod sync;
pub mod unit;
pub mod vault;
pub mod wire;
