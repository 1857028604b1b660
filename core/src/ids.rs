//! Identifier newtypes. Every id is opaque bytes shown as lowercase hex.

use std::fmt;

use crate::wire::{DecodeError, Reader, Writer};

/// Hex of the first four bytes, for logs and `Debug`.
pub fn short_hex(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(4)])
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses lowercase or uppercase hex of exactly `N` bytes.
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id as lowercase hex.
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }

            /// Parses the full hex form.
            pub fn from_hex(s: &str) -> Option<Self> {
                parse_hex::<32>(s).map($name)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), short_hex(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

id32!(
    /// A group: 32 random bytes drawn at creation.
    GroupId
);
id32!(
    /// A group membership: the Ed25519 membership public key.
    MemberId
);
id32!(
    /// A membership operation: BLAKE3 of its encoding.
    OpHash
);
id32!(
    /// The key a unit is encrypted under: an epoch id (the hash of the operation that
    /// started the epoch) or an audience key id (the hash of the audience grant).
    KeyId
);
id32!(
    /// A sealed unit: BLAKE3 of its complete encoding.
    UnitId
);
id32!(
    /// An Automerge change hash (SHA-256 of the change), kept as bytes outside the model.
    ChangeHash
);

/// Which of the document kinds DESIGN.md splits a group into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    /// The group document: name, agreements, settings. Facilitators write it.
    Group = 1,
    /// One member's own document. Only its owner writes it.
    Member = 2,
    /// One meeting. Every member writes it.
    Meeting = 3,
    /// Content for a chosen audience, under its own key.
    Audience = 4,
}

/// A document inside a group: its kind and 32 bytes.
///
/// For member documents the bytes are the owner's [`MemberId`]; for the group document they
/// are derived from the group id; meetings and audience documents draw them at random.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId {
    /// The kind, which decides who may write it.
    pub kind: DocKind,
    /// The id proper.
    pub bytes: [u8; 32],
}

impl DocId {
    /// Encoded length: kind byte plus 32 bytes.
    pub const LEN: usize = 33;

    /// The group document of `group`.
    pub fn group_doc(group: &GroupId) -> DocId {
        DocId {
            kind: DocKind::Group,
            bytes: blake3::derive_key("alongside group document v1", &group.0),
        }
    }

    /// The member document of `member`.
    pub fn member_doc(member: &MemberId) -> DocId {
        DocId {
            kind: DocKind::Member,
            bytes: member.0,
        }
    }

    /// The member document of `member` in a later generation; `None` is the first
    /// generation, whose member documents carry the member id itself.
    pub fn member_doc_in(member: &MemberId, generation: Option<&KeyId>) -> DocId {
        let Some(generation) = generation else {
            return DocId::member_doc(member);
        };
        let mut h = blake3::Hasher::new_derive_key("alongside member document v2");
        h.update(&member.0).update(&generation.0);
        DocId {
            kind: DocKind::Member,
            bytes: *h.finalize().as_bytes(),
        }
    }

    /// The document of the meeting with item id `id`, scheduled in `generation` (`None`
    /// for the first): the item id, then the generation's first 16 bytes (zeros in the
    /// first generation).
    pub fn meeting_doc(id: &[u8; 16], generation: Option<&KeyId>) -> DocId {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(id);
        if let Some(g) = generation {
            bytes[16..].copy_from_slice(&g.0[..16]);
        }
        DocId {
            kind: DocKind::Meeting,
            bytes,
        }
    }

    /// Appends the 33-byte encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.kind as u8).bytes(&self.bytes);
    }

    /// The 33-byte encoding.
    pub fn to_bytes(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = self.kind as u8;
        out[1..].copy_from_slice(&self.bytes);
        out
    }

    /// Reads the 33-byte encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<DocId, DecodeError> {
        let kind = match r.u8()? {
            1 => DocKind::Group,
            2 => DocKind::Member,
            3 => DocKind::Meeting,
            4 => DocKind::Audience,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "document kind",
                    tag,
                });
            }
        };
        Ok(DocId {
            kind,
            bytes: r.array()?,
        })
    }

    /// The owner, for a member document.
    pub fn owner(&self) -> Option<MemberId> {
        (self.kind == DocKind::Member).then_some(MemberId(self.bytes))
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({:?}:{})", self.kind, short_hex(&self.bytes))
    }
}

/// An item inside a document (story, goal, check-in, meeting, reply, ...): 16 random bytes,
/// shown as 32 hex digits. Commands accept any unique prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub [u8; 16]);

impl ItemId {
    /// Draws a fresh id.
    pub fn generate<R: rand::Rng + ?Sized>(rng: &mut R) -> ItemId {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        ItemId(b)
    }

    /// The id as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the full hex form.
    pub fn from_hex(s: &str) -> Option<ItemId> {
        parse_hex::<16>(s).map(ItemId)
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemId({})", self.to_hex())
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = GroupId([0xab; 32]);
        assert_eq!(GroupId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(GroupId::from_hex("zz"), None);
        assert_eq!(ItemId::from_hex(&"0f".repeat(16)), Some(ItemId([15; 16])));
    }

    #[test]
    fn doc_id_round_trip_and_unknown_kind() {
        let doc = DocId::member_doc(&MemberId([9; 32]));
        let mut w = Writer::new();
        doc.encode(&mut w);
        let bytes = w.finish();
        assert_eq!(DocId::decode(&mut Reader::new(&bytes)).unwrap(), doc);
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(matches!(
            DocId::decode(&mut Reader::new(&bad)),
            Err(DecodeError::UnknownTag { .. })
        ));
    }
}
