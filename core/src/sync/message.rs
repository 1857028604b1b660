//! Sync protocol messages and their frames (`docs/PROTOCOL.md`).

use crate::ids::{ChangeHash, DocId, GroupId, MemberId, OpHash};
use crate::wire::{DecodeError, Reader, Writer};

/// Protocol version carried in every frame.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame body accepted (a sealed unit plus room for the message around it).
pub const MAX_FRAME: usize = crate::unit::MAX_UNIT_LEN + 4096;
const MAX_OPS: usize = u16::MAX as usize;
const MAX_NEG_MESSAGE: usize = 1024 * 1024;
const MAX_NEED_HEADS: usize = 4096;

/// One document as a digest lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestEntry {
    /// The document.
    pub doc: DocId,
    /// BLAKE3 of its sorted heads.
    pub heads_hash: [u8; 32],
    /// How many changes it has.
    pub changes: u64,
}

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one message at a time; boxing would only add noise
pub enum Message {
    /// Opens the exchange: the group and every membership operation the sender holds.
    Hello {
        /// The group this stream is about.
        group: GroupId,
        /// Hashes of the sender's membership operations.
        ops: Vec<OpHash>,
    },
    /// Membership operations and audience grants the receiver lacks.
    Membership {
        /// Encoded membership operations.
        ops: Vec<Vec<u8>>,
        /// Encoded audience grants.
        grants: Vec<Vec<u8>>,
    },
    /// Live mode: membership operations and audience grants made or learned since the
    /// last exchange, pushed without being asked (the receiver may lack them).
    Ops {
        /// Encoded membership operations.
        ops: Vec<Vec<u8>>,
        /// Encoded audience grants.
        grants: Vec<Vec<u8>>,
    },
    /// A negentropy message over the set of `(document, heads)` pairs the receiver may read.
    DocSet {
        /// The negentropy bytes.
        msg: Vec<u8>,
    },
    /// The dialer's result of reconciling document sets.
    DocDiff {
        /// The dialer's documents whose heads the acceptor lacks.
        mine: Vec<DigestEntry>,
        /// Pair ids the acceptor has and the dialer lacks.
        theirs: Vec<[u8; 32]>,
    },
    /// The acceptor's answer to a document diff: which of the dialer's documents it lacks.
    DocPlan {
        /// Documents the acceptor has none of.
        lacking: Vec<DocId>,
    },
    /// A negentropy message for one document.
    Reconcile {
        /// The document.
        doc: DocId,
        /// The negentropy bytes.
        msg: Vec<u8>,
    },
    /// The heads of what both sides share of a document: send everything above them.
    Need {
        /// The document.
        doc: DocId,
        /// Heads of the shared part.
        heads: Vec<ChangeHash>,
    },
    /// A sealed unit.
    Unit {
        /// Its encoding.
        bytes: Vec<u8>,
    },
    /// The sender has sent everything the receiver lacked.
    CaughtUp,
    /// A joiner's first message: proof of an invite, and the keys to add.
    JoinRequest {
        /// The group.
        group: GroupId,
        /// The invite key's public half.
        invite: [u8; 32],
        /// The invite key's signature over group ‖ inviter endpoint ‖ joiner endpoint.
        proof: [u8; 64],
        /// The joiner's membership and X25519 keys.
        keys: crate::membership::MemberKeys,
        /// The joiner's transport key and the membership key's signature binding it.
        transport: crate::group::TransportBinding,
    },
    /// The inviter's answer: every membership operation, the joiner's add included.
    JoinAccepted {
        /// Encoded membership operations.
        ops: Vec<Vec<u8>>,
    },
    /// A member's first frame on a connection it dialed: who it is, and the binding of
    /// the endpoint key it dials from to its membership key. The acceptor checks the
    /// binding against the connection's authenticated endpoint id and its own membership
    /// state, so a member on a transport key announced moments ago is accepted, and one
    /// who left or was removed is refused, whichever key they use.
    Present {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
        /// Its transport key, bound both ways.
        transport: crate::group::TransportBinding,
    },
}

fn encode_binding(w: &mut Writer, b: &crate::group::TransportBinding) {
    w.bytes(&b.key).bytes(&b.signature).bytes(&b.owner_signature);
}

fn decode_binding(r: &mut Reader<'_>) -> Result<crate::group::TransportBinding, DecodeError> {
    Ok(crate::group::TransportBinding {
        key: r.array()?,
        signature: r.array()?,
        owner_signature: r.array()?,
    })
}

impl Message {
    fn tag(&self) -> u8 {
        match self {
            Message::Hello { .. } => 1,
            Message::Membership { .. } => 2,
            Message::DocSet { .. } => 3,
            Message::Reconcile { .. } => 4,
            Message::Need { .. } => 5,
            Message::Unit { .. } => 6,
            Message::CaughtUp => 7,
            Message::JoinRequest { .. } => 8,
            Message::JoinAccepted { .. } => 9,
            Message::DocDiff { .. } => 10,
            Message::DocPlan { .. } => 11,
            Message::Ops { .. } => 12,
            Message::Present { .. } => 13,
        }
    }

    /// Whether a complete frame (as [`Message::to_frame`] makes it) carries membership
    /// operations (Membership or Ops): what may still go to a member who just departed.
    pub fn is_membership_frame(frame: &[u8]) -> bool {
        let tag = |m: &Message| m.tag();
        let membership = tag(&Message::Membership {
            ops: vec![],
            grants: vec![],
        });
        let ops = tag(&Message::Ops {
            ops: vec![],
            grants: vec![],
        });
        // length (4) ‖ version (1) ‖ type (1)
        frame.get(4) == Some(&PROTOCOL_VERSION) && matches!(frame.get(5), Some(t) if *t == membership || *t == ops)
    }

    /// The complete frame: length prefix, version, type, body.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(PROTOCOL_VERSION).u8(self.tag());
        match self {
            Message::Hello { group, ops } => {
                w.bytes(&group.0).count(ops.len());
                for h in ops {
                    w.bytes(&h.0);
                }
            }
            Message::Membership { ops, grants } | Message::Ops { ops, grants } => {
                for list in [ops, grants] {
                    w.count(list.len());
                    for item in list {
                        w.var_bytes(item);
                    }
                }
            }
            Message::DocSet { msg } => {
                w.var_bytes(msg);
            }
            Message::DocDiff { mine, theirs } => {
                w.count(mine.len());
                for d in mine {
                    d.doc.encode(&mut w);
                    w.bytes(&d.heads_hash).u64(d.changes);
                }
                w.count(theirs.len());
                for id in theirs {
                    w.bytes(id);
                }
            }
            Message::DocPlan { lacking } => {
                w.count(lacking.len());
                for d in lacking {
                    d.encode(&mut w);
                }
            }
            Message::Reconcile { doc, msg } => {
                doc.encode(&mut w);
                w.var_bytes(msg);
            }
            Message::Need { doc, heads } => {
                doc.encode(&mut w);
                w.count(heads.len());
                for h in heads {
                    w.bytes(&h.0);
                }
            }
            Message::Unit { bytes } => {
                w.var_bytes(bytes);
            }
            Message::CaughtUp => {}
            Message::JoinRequest {
                group,
                invite,
                proof,
                keys,
                transport,
            } => {
                w.bytes(&group.0).bytes(invite).bytes(proof);
                keys.encode(&mut w);
                encode_binding(&mut w, transport);
            }
            Message::Present {
                group,
                member,
                transport,
            } => {
                w.bytes(&group.0).bytes(&member.0);
                encode_binding(&mut w, transport);
            }
            Message::JoinAccepted { ops } => {
                w.count(ops.len());
                for op in ops {
                    w.var_bytes(op);
                }
            }
        }
        let body = w.finish();
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend(body);
        frame
    }

    /// Decodes a frame body (what follows the length prefix).
    pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
        if body.len() > MAX_FRAME {
            return Err(DecodeError::TooLong {
                len: body.len() as u64,
                max: MAX_FRAME as u64,
            });
        }
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version(version));
        }
        let msg = match r.u8()? {
            1 => {
                let group = GroupId(r.array()?);
                let n = r.count(MAX_OPS, 32)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(OpHash(r.array()?));
                }
                Message::Hello { group, ops }
            }
            tag @ (2 | 12) => {
                let mut lists = [Vec::new(), Vec::new()];
                for list in &mut lists {
                    let n = r.count(MAX_OPS, 4)?;
                    for _ in 0..n {
                        list.push(r.var_bytes(crate::membership::MAX_OP_LEN)?.to_vec());
                    }
                }
                let [ops, grants] = lists;
                if tag == 2 {
                    Message::Membership { ops, grants }
                } else {
                    Message::Ops { ops, grants }
                }
            }
            3 => Message::DocSet {
                msg: r.var_bytes(MAX_NEG_MESSAGE)?.to_vec(),
            },
            10 => {
                let n = r.count(MAX_OPS, DocId::LEN + 40)?;
                let mut mine = Vec::with_capacity(n);
                for _ in 0..n {
                    mine.push(DigestEntry {
                        doc: DocId::decode(&mut r)?,
                        heads_hash: r.array()?,
                        changes: r.u64()?,
                    });
                }
                let n = r.count(MAX_OPS, 32)?;
                let mut theirs = Vec::with_capacity(n);
                for _ in 0..n {
                    theirs.push(r.array()?);
                }
                Message::DocDiff { mine, theirs }
            }
            11 => {
                let n = r.count(MAX_OPS, DocId::LEN)?;
                let mut lacking = Vec::with_capacity(n);
                for _ in 0..n {
                    lacking.push(DocId::decode(&mut r)?);
                }
                Message::DocPlan { lacking }
            }
            4 => Message::Reconcile {
                doc: DocId::decode(&mut r)?,
                msg: r.var_bytes(MAX_NEG_MESSAGE)?.to_vec(),
            },
            5 => {
                let doc = DocId::decode(&mut r)?;
                let n = r.count(MAX_NEED_HEADS, 32)?;
                let mut heads = Vec::with_capacity(n);
                for _ in 0..n {
                    heads.push(ChangeHash(r.array()?));
                }
                Message::Need { doc, heads }
            }
            6 => Message::Unit {
                bytes: r.var_bytes(crate::unit::MAX_UNIT_LEN)?.to_vec(),
            },
            7 => Message::CaughtUp,
            8 => Message::JoinRequest {
                group: GroupId(r.array()?),
                invite: r.array()?,
                proof: r.array()?,
                keys: crate::membership::MemberKeys::decode(&mut r)?,
                transport: decode_binding(&mut r)?,
            },
            13 => Message::Present {
                group: GroupId(r.array()?),
                member: MemberId(r.array()?),
                transport: decode_binding(&mut r)?,
            },
            9 => {
                let n = r.count(MAX_OPS, 4)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(r.var_bytes(crate::membership::MAX_OP_LEN)?.to_vec());
                }
                Message::JoinAccepted { ops }
            }
            tag => return Err(DecodeError::UnknownTag { what: "message", tag }),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Splits a byte stream into frame bodies, refusing an over-long frame as soon as its
/// length prefix arrives (before buffering it).
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            limit: MAX_FRAME,
        }
    }
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Lowers (or restores) the largest frame accepted, e.g. to a few KiB while a stranger
    /// may only send a join request. Never above the protocol's own limit.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME);
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len == 0 || len > self.limit {
            return Err(DecodeError::TooLong {
                len: len as u64,
                max: self.limit as u64,
            });
        }
        if self.buf.len() < 4 + len {
            // Room for exactly the rest of this frame: a large frame must not grow the
            // buffer by doubling (up to twice its size).
            self.buf.reserve_exact(4 + len - self.buf.len());
            return Ok(None);
        }
        // The frame's own bytes, without a copy; what followed it stays buffered.
        let rest = self.buf.split_off(4 + len);
        let mut body = std::mem::replace(&mut self.buf, rest);
        body.drain(..4);
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DocKind;

    #[test]
    fn only_membership_and_ops_frames_are_membership_frames() {
        for m in samples() {
            let expected = matches!(m, Message::Membership { .. } | Message::Ops { .. });
            assert_eq!(Message::is_membership_frame(&m.to_frame()), expected, "{m:?}");
        }
        let ops = Message::Ops {
            ops: vec![vec![1]],
            grants: vec![],
        };
        assert!(Message::is_membership_frame(&ops.to_frame()));
        assert!(!Message::is_membership_frame(&[0, 0]));
    }

    fn samples() -> Vec<Message> {
        let doc = DocId {
            kind: DocKind::Meeting,
            bytes: [4; 32],
        };
        vec![
            Message::Hello {
                group: GroupId([1; 32]),
                ops: vec![OpHash([2; 32]), OpHash([3; 32])],
            },
            Message::Membership {
                ops: vec![vec![1, 2, 3]],
                grants: vec![],
            },
            Message::Ops {
                ops: vec![],
                grants: vec![vec![9; 20]],
            },
            Message::DocSet { msg: vec![0x61, 0] },
            Message::DocDiff {
                mine: vec![DigestEntry {
                    doc,
                    heads_hash: [5; 32],
                    changes: 9,
                }],
                theirs: vec![[8; 32]],
            },
            Message::DocPlan { lacking: vec![doc] },
            Message::Reconcile {
                doc,
                msg: vec![0x61, 1],
            },
            Message::Need {
                doc,
                heads: vec![ChangeHash([6; 32])],
            },
            Message::Unit { bytes: vec![7; 100] },
            Message::CaughtUp,
        ]
    }

    #[test]
    fn every_message_round_trips_through_a_byte_stream() {
        let mut reader = FrameReader::new();
        let all: Vec<u8> = samples().iter().flat_map(|m| m.to_frame()).collect();
        // Delivered in awkward pieces.
        for chunk in all.chunks(7) {
            reader.push(chunk);
        }
        let mut got = Vec::new();
        while let Some(body) = reader.next_frame().unwrap() {
            got.push(Message::decode(&body).unwrap());
        }
        assert_eq!(got, samples());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut reader = FrameReader::new();
        reader.push(&u32::MAX.to_le_bytes());
        assert!(
            reader.next_frame().is_err(),
            "oversized length refused before buffering"
        );
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[9, 1]).is_err(), "unknown version");
        assert!(Message::decode(&[1, 99]).is_err(), "unknown type");
        let mut frame = Message::CaughtUp.to_frame();
        frame.push(0);
        assert!(Message::decode(&frame[4..]).is_err(), "trailing bytes");
        let hello = Message::Hello {
            group: GroupId([1; 32]),
            ops: vec![OpHash([2; 32])],
        }
        .to_frame();
        for cut in 4..hello.len() {
            assert!(Message::decode(&hello[4..cut]).is_err(), "truncated at {cut}");
        }
    }
}
