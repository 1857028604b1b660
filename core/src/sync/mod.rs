//! The sync protocol, sans-IO: messages and frames ([`message`]), what it needs from a
//! group session ([`access`]), and the per-connection state machine ([`engine`]).
//! `docs/PROTOCOL.md` specifies the bytes and the flow.

pub mod access;
pub mod engine;
pub mod message;

pub use engine::{DEFAULT_CHUNK_OPS, Event, PeerSync, ProtocolError, Step, SyncStats};
pub use message::{FrameReader, Message};
