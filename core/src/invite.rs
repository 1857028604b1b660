//! Invitations: tickets, the joiner's proof, and the inviter's record of an invite.
//!
//! A ticket holds the group id, the inviter's endpoint (id and direct addresses), the
//! secret half of a one-time Ed25519 invite key, and an expiry. The inviter stores only the
//! public half (with the expiry and a used flag) and marks it used, durably, before it
//! answers. The joiner proves it holds the secret by signing `group ‖ inviter endpoint id ‖
//! joiner endpoint id`: bound to both endpoints, the proof can be neither replayed to the
//! inviter by someone else nor relayed to another member. A ticket is like a key to the
//! group's history, and the app says so.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{self, SigningSecret};
use crate::ids::GroupId;
use crate::wire::{DecodeError, Reader, Writer};

/// Text prefix of a ticket.
pub const TICKET_PREFIX: &str = "alongside1";
const TICKET_VERSION: u8 = 2;
const MAX_ADDRS: usize = 16;
/// Longest relay URL a ticket carries.
pub const MAX_RELAY_URL: usize = 256;
const PROOF_CONTEXT: &[u8] = b"alongside/join-proof/v1";

/// A ticket could not be read or used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket at all (wrong prefix or characters).
    #[error("that is not an Alongside invitation ticket")]
    NotATicket,
    /// The bytes inside are malformed.
    #[error("the invitation ticket is damaged ({0})")]
    Damaged(DecodeError),
}

/// An invitation ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The group.
    pub group: GroupId,
    /// The inviter's endpoint id (its transport public key for the group).
    pub inviter: [u8; 32],
    /// Where the inviter's node listens.
    pub addrs: Vec<SocketAddr>,
    /// The iroh relay the inviter's node is reachable through, if it uses one.
    pub relay: Option<String>,
    /// The one-time invite key (secret half).
    pub invite_secret: [u8; 32],
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
}

/// The invite key is a secret: it is wiped when the ticket goes.
impl Drop for Ticket {
    fn drop(&mut self) {
        self.invite_secret.zeroize();
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("group", &self.group)
            .field("addrs", &self.addrs)
            .field("relay", &self.relay)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// The invite key's public half (what the inviter stores).
    pub fn invite_public(&self) -> [u8; 32] {
        SigningSecret::from_seed(&self.invite_secret).public()
    }

    /// The ticket as text: the prefix and lowercase base32. It holds the invite key, so
    /// it is wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut w = Writer::new();
        w.u8(TICKET_VERSION).bytes(&self.group.0).bytes(&self.inviter);
        w.count(self.addrs.len());
        for a in &self.addrs {
            match a.ip() {
                IpAddr::V4(ip) => w.u8(4).bytes(&ip.octets()),
                IpAddr::V6(ip) => w.u8(6).bytes(&ip.octets()),
            };
            w.u16(a.port());
        }
        w.var_bytes(self.relay.as_deref().unwrap_or("").as_bytes());
        w.bytes(&self.invite_secret).i64(self.expires_at_ms);
        let bytes = Zeroizing::new(w.finish());
        let mut body = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&bytes));
        body.make_ascii_lowercase();
        Zeroizing::new(format!("{TICKET_PREFIX}{}", body.as_str()))
    }

    /// The ticket's text in upper case, for a QR code: it fits QR's compact alphanumeric
    /// mode, and [`Ticket::from_text`] reads either case. Wiped when dropped.
    pub fn to_qr_text(&self) -> Zeroizing<String> {
        let mut text = self.to_text();
        text.make_ascii_uppercase();
        text
    }

    /// Parses ticket text (surrounding whitespace is ignored).
    pub fn from_text(text: &str) -> Result<Ticket, TicketError> {
        // Either case: a QR code carries the ticket in upper case (QR's compact mode).
        let text = text.trim();
        let body = text
            .get(..TICKET_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(TICKET_PREFIX))
            .map(|_| &text[TICKET_PREFIX.len()..])
            .ok_or(TicketError::NotATicket)?;
        if body.len() > 1024 {
            return Err(TicketError::NotATicket);
        }
        let upper = Zeroizing::new(body.to_ascii_uppercase());
        let bytes = Zeroizing::new(
            data_encoding::BASE32_NOPAD
                .decode(upper.as_bytes())
                .map_err(|_| TicketError::NotATicket)?,
        );
        Self::decode(&bytes).map_err(TicketError::Damaged)
    }

    fn decode(bytes: &[u8]) -> Result<Ticket, DecodeError> {
        let mut r = Reader::new(bytes);
        // Version 1 had no relay; it is still read.
        let version = r.u8()?;
        if version != TICKET_VERSION && version != 1 {
            return Err(DecodeError::Version(version));
        }
        let group = GroupId(r.array()?);
        let inviter = r.array()?;
        let n = r.count(MAX_ADDRS, 7)?;
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = match r.u8()? {
                4 => IpAddr::from(r.array::<4>()?),
                6 => IpAddr::from(r.array::<16>()?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "address family",
                        tag,
                    });
                }
            };
            addrs.push(SocketAddr::new(ip, r.u16()?));
        }
        let relay = if version >= 2 {
            let raw = r.var_bytes(MAX_RELAY_URL)?;
            let url = std::str::from_utf8(raw).map_err(|_| DecodeError::Invalid("relay URL"))?;
            (!url.is_empty()).then(|| url.to_string())
        } else {
            None
        };
        let invite_secret = r.array()?;
        let expires_at_ms = r.i64()?;
        r.finish()?;
        Ok(Ticket {
            group,
            inviter,
            addrs,
            relay,
            invite_secret,
            expires_at_ms,
        })
    }

    /// The joiner's proof for joining from endpoint `joiner`.
    pub fn prove(&self, joiner: &[u8; 32]) -> [u8; 64] {
        SigningSecret::from_seed(&self.invite_secret).sign(&proof_message(&self.group, &self.inviter, joiner))
    }
}

fn proof_message(group: &GroupId, inviter: &[u8; 32], joiner: &[u8; 32]) -> Vec<u8> {
    [PROOF_CONTEXT, &group.0, inviter, joiner].concat()
}

/// Checks a join proof against the invite's public key and both endpoints.
pub fn verify_proof(
    invite_public: &[u8; 32],
    group: &GroupId,
    inviter: &[u8; 32],
    joiner: &[u8; 32],
    proof: &[u8; 64],
) -> bool {
    crypto::verify(invite_public, &proof_message(group, inviter, joiner), proof).is_ok()
}

/// What the inviter keeps of an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteRecord {
    /// The invite key's public half.
    pub public: [u8; 32],
    /// Expiry (Unix ms).
    pub expires_at_ms: i64,
    /// Whether it was used.
    pub used: bool,
    /// Whether the inviter withdrew it before it was used.
    pub revoked: bool,
}

impl InviteRecord {
    /// Encoded record (version 2 added `revoked`; version 1 records are still read).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(2)
            .bytes(&self.public)
            .i64(self.expires_at_ms)
            .u8(u8::from(self.used))
            .u8(u8::from(self.revoked));
        w.finish()
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<InviteRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != 1 && version != 2 {
            return Err(DecodeError::Version(version));
        }
        let flag = |r: &mut Reader<'_>, what| match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { what, tag }),
        };
        let rec = InviteRecord {
            public: r.array()?,
            expires_at_ms: r.i64()?,
            used: flag(&mut r, "used flag")?,
            revoked: version == 2 && flag(&mut r, "revoked flag")?,
        };
        r.finish()?;
        Ok(rec)
    }

    /// Whether it can still be used at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        !self.used && !self.revoked && self.expires_at_ms > now_ms
    }

    /// A short id to name it by (the start of the invite key's public half, in hex).
    pub fn short_id(&self) -> String {
        crate::ids::short_hex(&self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            group: GroupId([3; 32]),
            inviter: [4; 32],
            addrs: vec!["127.0.0.1:4567".parse().unwrap(), "[::1]:4567".parse().unwrap()],
            relay: Some("https://relay.example.org./".into()),
            invite_secret: [5; 32],
            expires_at_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn tickets_round_trip_as_text() {
        let t = ticket();
        let text = t.to_text();
        assert!(text.starts_with(TICKET_PREFIX));
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(Ticket::from_text(&format!("  {}\n", text.as_str())).unwrap(), t);
        let mut direct = t.clone();
        direct.relay = None;
        assert_eq!(Ticket::from_text(&direct.to_text()).unwrap(), direct);
        assert!(
            !format!("{t:?}").contains("invite_secret"),
            "the secret stays out of Debug"
        );
    }

    #[test]
    fn a_ticket_read_from_its_qr_code_in_upper_case_is_the_same_ticket() {
        let t = ticket();
        assert_eq!(Ticket::from_text(&t.to_text().to_ascii_uppercase()), Ok(t));
    }

    #[test]
    fn a_version_1_ticket_without_a_relay_is_still_read() {
        let mut t = ticket();
        t.relay = None;
        let mut w = Writer::new();
        w.u8(1).bytes(&t.group.0).bytes(&t.inviter).count(1);
        w.u8(4).bytes(&[127, 0, 0, 1]).u16(4567);
        w.bytes(&t.invite_secret).i64(t.expires_at_ms);
        let text = format!(
            "{TICKET_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&w.finish()).to_ascii_lowercase()
        );
        let read = Ticket::from_text(&text).unwrap();
        assert_eq!(read.relay, None);
        assert_eq!(read.addrs, vec!["127.0.0.1:4567".parse().unwrap()]);
        assert_eq!(read.invite_secret, t.invite_secret);
    }

    #[test]
    fn bad_tickets_are_clear_errors() {
        assert_eq!(Ticket::from_text("hello"), Err(TicketError::NotATicket));
        assert_eq!(Ticket::from_text("alongside1!!!"), Err(TicketError::NotATicket));
        let text = ticket().to_text();
        assert!(matches!(
            Ticket::from_text(&text[..text.len() - 8]),
            Err(TicketError::Damaged(_))
        ));
    }

    #[test]
    fn proofs_bind_both_endpoints() {
        let t = ticket();
        let proof = t.prove(&[9; 32]);
        assert!(verify_proof(&t.invite_public(), &t.group, &t.inviter, &[9; 32], &proof));
        assert!(!verify_proof(
            &t.invite_public(),
            &t.group,
            &t.inviter,
            &[8; 32],
            &proof
        ));
        assert!(!verify_proof(&t.invite_public(), &t.group, &[1; 32], &[9; 32], &proof));
    }
}
