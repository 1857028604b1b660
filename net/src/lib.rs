//! # alongside-net
//!
//! The network layer of Alongside: it will own the iroh endpoints (one per group
//! membership, keyed by that membership's transport key), accept and dial connections on
//! one ALPN, and drive `alongside-core`'s sans-IO sync engine with real time and real
//! sockets. It moves bytes; every decision about what those bytes mean is made in core.
//!
//! Until the sync work lands, this crate only fixes the protocol identifier, so that the
//! workspace layout and the layer rules are in place from the start.

/// The one ALPN Alongside speaks: version 1 of the sync protocol (`docs/PROTOCOL.md`).
pub const ALPN: &[u8] = b"alongside/1";

#[cfg(test)]
mod tests {
    #[test]
    fn alpn_names_the_protocol_version() {
        assert_eq!(super::ALPN, b"alongside/1");
    }
}
