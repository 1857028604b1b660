//! # alongside-net
//!
//! The network layer of Alongside. It owns one iroh endpoint per group membership (keyed
//! by that membership's transport key), accepts and dials connections on one ALPN, and
//! drives `alongside-core`'s sans-IO sync engine ([`alongside_core::sync::PeerSync`]) with
//! real sockets. It moves bytes; every decision about what they mean is made in core.
//!
//! - [`Node`]: the endpoints of an unlocked profile, serving every group.
//! - [`NetConfig`]: what the node may reach. Relays, address publishing and port mapping
//!   are off; a node reaches only the addresses it is given.
//!
//! - [`NodeEvent`]: what a running node reports (connections, applied changes, rounds).
//!
//! The vault (store and sessions) is shared behind a mutex; every frame is handled in a
//! blocking task that locks it, applies the frame through `Vault::edit` (so what a frame
//! changed is durable before the answer is sent) and releases it. Whatever became durable
//! is then published on an in-process feed; every live conversation of that group pushes
//! it to its member (not back to the one it came from). A lost push is repaired by the
//! dialer's periodic anti-entropy round.

mod accept;
mod conn;
mod gate;
mod join;
mod live;
mod meeting;
mod node;
mod presence;
mod supervisor;

#[doc(hidden)]
pub use node::loopback_endpoint;
pub use node::{MeetingStatus, NetConfig, NetError, Node, NodeEvent, RelayChoice, SyncReport};

/// The one ALPN Alongside speaks: version 1 of the sync protocol (`docs/PROTOCOL.md`).
pub const ALPN: &[u8] = b"alongside/1";

/// Close codes sent with a refused or failed connection.
pub mod close_code {
    /// Everything went well.
    pub const DONE: u32 = 0;
    /// The peer broke the protocol (malformed, unexpected or invalid data).
    pub const PROTOCOL: u32 = 1;
    /// The peer is not a member and presented no valid invitation.
    pub const REFUSED: u32 = 2;
    /// The invitation was already used.
    pub const INVITE_USED: u32 = 3;
    /// The invitation expired.
    pub const INVITE_EXPIRED: u32 = 4;
    /// The invitation is not known to this node. (No longer sent: an invite key this node
    /// never issued is refused with [`REFUSED`], like a wrong group id, so that an outsider
    /// cannot tell which group an endpoint serves. Still understood from older nodes.)
    pub const INVITE_UNKNOWN: u32 = 5;
    /// Both devices called each other at once; this call gave way to the other.
    pub const CROSSED: u32 = 6;
    /// The inviter withdrew the invitation.
    pub const INVITE_REVOKED: u32 = 7;
}
