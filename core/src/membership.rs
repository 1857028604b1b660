//! Signed, causally linked membership operations and the state they resolve to.
//!
//! A group's membership is an append-only DAG of [`SignedOp`]s. Every device resolves the
//! same set of operations to the same [`MembershipState`] by folding them in a deterministic
//! causal order (ties broken by operation hash), checking each against the state its
//! predecessors produced. Invalid operations stay in the DAG (others may name them as
//! parents) but have no effect. The exact byte format is in `docs/FORMAT.md`.
//!
//! This module decides *who* is a member and which epoch is current. Which epoch keys this
//! device holds is the group session's business.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::crypto::{self, SigningSecret};
use crate::ids::{ChangeHash, DocId, GroupId, KeyId, MemberId, OpHash};
use crate::replica::ACTOR_SUFFIX_LEN;
use crate::wire::{DecodeError, Reader, Writer};

mod resolve;

pub use resolve::MembershipState;

/// Format version of membership operations.
pub const OP_VERSION: u8 = 1;
/// Largest encoded operation accepted.
pub const MAX_OP_LEN: usize = 256 * 1024;
const MAX_PARENTS: usize = 64;
const MAX_SEALS: usize = 1024;
const MAX_SEAL_LEN: usize = 256;
/// Largest encrypted list of earlier epoch keys a rotation may carry.
const MAX_PREVIOUS_LEN: usize = 4096;
/// Most members a group may have (every rotation seals the key to each; the format
/// allows 1,024 seals).
pub const MAX_MEMBERS: usize = 1000;
/// Most operations one account may have in a group's log, so one member cannot fill it.
/// A member's account holds their own operations and those of everyone they named in an
/// add that did not make a member (see [`MembershipLog`], "Budgets").
pub const MAX_OPS_PER_AUTHOR: usize = 512;
/// Most bytes of operations one account may have in a group's log.
pub const MAX_BYTES_PER_AUTHOR: usize = 4 * 1024 * 1024;
/// Most parents an operation names (the format's limit).
pub const MAX_OP_PARENTS: usize = MAX_PARENTS;
/// Most operations one group's log may hold, for the group's whole life. Resolution is
/// quadratic in the worst case; a group of 50 over ten years makes about a thousand
/// (adds, departures, a rotation or two after each, role changes), and device, keeper and
/// approval operations still to come fit beside them.
pub const MAX_OPS: usize = 4096;
/// Most bytes one group's log may hold: with every grant ([`MAX_GRANT_BYTES`]) it still
/// fits one frame, so a whole log is never too large to send.
pub const MAX_LOG_BYTES: usize = 40 * 1024 * 1024;
/// The part of [`MAX_OPS`] only current facilitators' operations, and current members'
/// rotations and leaves, may use: room kept so that nobody can fill the log to the point
/// where a member can no longer be removed.
pub const RESERVED_OPS: usize = 1024;
/// The part of [`MAX_LOG_BYTES`] kept the same way.
pub const RESERVED_BYTES: usize = 8 * 1024 * 1024;
/// Most operations one account may place in the reserved room.
pub const RESERVED_OPS_PER_AUTHOR: usize = 64;
/// Most bytes one account may place in the reserved room.
pub const RESERVED_BYTES_PER_AUTHOR: usize = 512 * 1024;
/// Most bytes of audience grants one group may hold (see [`MAX_LOG_BYTES`]).
pub const MAX_GRANT_BYTES: usize = 16 * 1024 * 1024;
/// Most documents one removal records heads for.
pub const MAX_HEAD_DOCS: usize = 4096;
const MAX_HEADS: usize = 256;

const OP_SIG_CONTEXT: &[u8] = b"alongside/op/v1";
const BOX_KEY_CONTEXT: &[u8] = b"alongside/box-key/v1";
/// HPKE `info` for epoch keys sealed to a member.
pub const EPOCH_SEAL_INFO: &[u8] = b"alongside/epoch-key/v1";

/// What a member may do in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// May add and remove members and change roles; writes the group document.
    Facilitator = 1,
    /// An ordinary member.
    Member = 2,
}

impl Role {
    fn decode(tag: u8) -> Result<Role, DecodeError> {
        match tag {
            1 => Ok(Role::Facilitator),
            2 => Ok(Role::Member),
            tag => Err(DecodeError::UnknownTag { what: "role", tag }),
        }
    }

    /// The lowercase name used in the CLI and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Facilitator => "facilitator",
            Role::Member => "member",
        }
    }
}

/// A member's public keys as an add operation records them: the membership key and the
/// X25519 key, which the membership key signs (bound to the group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKeys {
    /// The membership (Ed25519) public key.
    pub member: MemberId,
    /// The X25519 public key keys are sealed to.
    pub box_public: [u8; 32],
    /// The membership key's signature over the X25519 key.
    pub box_signature: [u8; 64],
}

impl MemberKeys {
    /// Signs `box_public` with `membership` for `group`.
    pub fn new(group: &GroupId, membership: &SigningSecret, box_public: [u8; 32]) -> MemberKeys {
        MemberKeys {
            member: MemberId(membership.public()),
            box_public,
            box_signature: membership.sign(&Self::message(group, &box_public)),
        }
    }

    fn message(group: &GroupId, box_public: &[u8; 32]) -> Vec<u8> {
        [BOX_KEY_CONTEXT, &group.0, box_public].concat()
    }

    /// Whether the X25519 key is really signed by the membership key.
    pub fn verify(&self, group: &GroupId) -> bool {
        crypto::verify(
            &self.member.0,
            &Self::message(group, &self.box_public),
            &self.box_signature,
        )
        .is_ok()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.bytes(&self.member.0)
            .bytes(&self.box_public)
            .bytes(&self.box_signature);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MemberKeys, DecodeError> {
        Ok(MemberKeys {
            member: MemberId(r.array()?),
            box_public: r.array()?,
            box_signature: r.array()?,
        })
    }
}

/// A key sealed (HPKE) to one member's X25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySeal {
    /// The member who can open it.
    pub recipient: MemberId,
    /// `encapsulated key ‖ ciphertext`.
    pub sealed: Vec<u8>,
}

impl KeySeal {
    /// The associated data a seal is bound to.
    pub fn aad(group: &GroupId, recipient: &MemberId) -> Vec<u8> {
        [&group.0[..], &recipient.0[..]].concat()
    }
}

/// The latest change of one of a departing member's installs (actors) in one document, as
/// the author of the removal saw it. Installs write linear histories (forks are rejected),
/// so this names every earlier change of that install too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActorHead {
    /// The install suffix of the actor id (the member key is the removed member's).
    pub suffix: [u8; ACTOR_SUFFIX_LEN],
    /// Its sequence number.
    pub seq: u32,
    /// Its change hash.
    pub hash: ChangeHash,
}

/// Per document, the latest accepted change of each of a departing member's installs.
pub type RemovalHeads = Vec<(DocId, Vec<ActorHead>)>;

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Founds the group. Its author is the first facilitator; its hash is the first epoch id.
    Create {
        /// The creator's keys.
        creator: MemberKeys,
        /// The first epoch key, sealed to the creator.
        seal: KeySeal,
    },
    /// Adds a member with a role and grants the current epoch key.
    Add {
        /// The new member's keys.
        keys: MemberKeys,
        /// The role they start with.
        role: Role,
        /// The epoch whose key is granted.
        epoch: KeyId,
        /// That key, sealed to the new member.
        seal: KeySeal,
    },
    /// Removes a member (facilitators only).
    Remove {
        /// Who is removed.
        member: MemberId,
        /// Their accepted changes, as the remover saw them.
        heads: RemovalHeads,
    },
    /// Changes a member's role (facilitators only).
    ChangeRole {
        /// Whose role.
        member: MemberId,
        /// The new role.
        role: Role,
        /// When making a facilitator a member again: their accepted changes to the
        /// documents only facilitators write (the group document), as the author saw them.
        /// Changes of theirs there stay acceptable only up to these (`MEMBERSHIP.md`).
        heads: RemovalHeads,
    },
    /// The author leaves.
    Leave {
        /// Their own accepted changes.
        heads: RemovalHeads,
    },
    /// Starts a new epoch: a fresh key sealed to every current member individually.
    Rotate {
        /// One seal per member of the causal past, exactly.
        seals: Vec<KeySeal>,
        /// The keys of the epochs it follows, encrypted under the new key (see
        /// [`PreviousKeys`]), so whoever holds the new key can read earlier history.
        /// Absent when new members must not read earlier history.
        previous: Option<Vec<u8>>,
    },
}

impl OpKind {
    fn tag(&self) -> u8 {
        match self {
            OpKind::Create { .. } => 1,
            OpKind::Add { .. } => 2,
            OpKind::Remove { .. } => 3,
            OpKind::ChangeRole { .. } => 4,
            OpKind::Leave { .. } => 5,
            OpKind::Rotate { .. } => 6,
        }
    }
}

/// An unsigned operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The group it belongs to.
    pub group: GroupId,
    /// Who signs it.
    pub author: MemberId,
    /// The operations it causally follows (the author's heads when writing).
    pub parents: Vec<OpHash>,
    /// When the author says it was made (Unix milliseconds; claimed, not proven).
    pub created_at_ms: i64,
    /// What it does.
    pub kind: OpKind,
}

/// A signed operation with its encoding and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOp {
    op: Op,
    bytes: Vec<u8>,
    hash: OpHash,
}

/// Why an operation could not be accepted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpError {
    /// The bytes are not a well-formed operation.
    #[error("malformed membership operation: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify against the author.
    #[error("membership operation signature is not valid")]
    Signature,
    /// The operation belongs to another group.
    #[error("membership operation belongs to another group")]
    WrongGroup,
    /// A parent is not known yet.
    #[error("membership operation follows one not received yet")]
    MissingParent,
    /// A second create, or a create with parents.
    #[error("a group can be created only once")]
    SecondCreate,
    /// The author never was a member of the group.
    #[error("membership operation by someone who is not a member")]
    NotAMember,
    /// The group's log is full.
    #[error("the group has more membership operations than allowed")]
    TooMany,
}

impl Op {
    /// Signs the operation with the author's membership key.
    ///
    /// # Panics
    /// If `key` is not the key of `self.author`, or the operation exceeds the format's
    /// limits (both are programming errors).
    pub fn sign(self, key: &SigningSecret) -> SignedOp {
        assert_eq!(MemberId(key.public()), self.author, "operation signed by its author");
        let mut w = Writer::new();
        self.encode_body(&mut w);
        let body = w.finish();
        let signature = key.sign(&[OP_SIG_CONTEXT, &body].concat());
        let mut bytes = body;
        bytes.extend_from_slice(&signature);
        assert!(bytes.len() <= MAX_OP_LEN, "operation within size limit");
        let hash = OpHash(*blake3::hash(&bytes).as_bytes());
        SignedOp { op: self, bytes, hash }
    }

    fn encode_body(&self, w: &mut Writer) {
        w.u8(OP_VERSION)
            .bytes(&self.group.0)
            .bytes(&self.author.0)
            .i64(self.created_at_ms);
        w.count(self.parents.len());
        for p in &self.parents {
            w.bytes(&p.0);
        }
        w.u8(self.kind.tag());
        match &self.kind {
            OpKind::Create { creator, seal } => {
                creator.encode(w);
                encode_seal(w, seal);
            }
            OpKind::Add {
                keys,
                role,
                epoch,
                seal,
            } => {
                keys.encode(w);
                w.u8(*role as u8).bytes(&epoch.0);
                encode_seal(w, seal);
            }
            OpKind::Remove { member, heads } => {
                w.bytes(&member.0);
                encode_heads(w, heads);
            }
            OpKind::ChangeRole { member, role, heads } => {
                w.bytes(&member.0).u8(*role as u8);
                encode_heads(w, heads);
            }
            OpKind::Leave { heads } => encode_heads(w, heads),
            OpKind::Rotate { seals, previous } => {
                w.count(seals.len());
                for s in seals {
                    encode_seal(w, s);
                }
                match previous {
                    None => w.u8(0),
                    Some(p) => w.u8(1).var_bytes(p),
                };
            }
        }
    }
}

fn encode_seal(w: &mut Writer, seal: &KeySeal) {
    w.bytes(&seal.recipient.0).var_bytes(&seal.sealed);
}

fn decode_seal(r: &mut Reader<'_>) -> Result<KeySeal, DecodeError> {
    Ok(KeySeal {
        recipient: MemberId(r.array()?),
        sealed: r.var_bytes(MAX_SEAL_LEN)?.to_vec(),
    })
}

fn encode_heads(w: &mut Writer, heads: &RemovalHeads) {
    w.count(heads.len());
    for (doc, hashes) in heads {
        doc.encode(w);
        w.count(hashes.len());
        for h in hashes {
            w.bytes(&h.suffix).u32(h.seq).bytes(&h.hash.0);
        }
    }
}

fn decode_heads(r: &mut Reader<'_>) -> Result<RemovalHeads, DecodeError> {
    let n = r.count(MAX_HEAD_DOCS, DocId::LEN + 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let doc = DocId::decode(r)?;
        let m = r.count(MAX_HEADS, ACTOR_SUFFIX_LEN + 4 + 32)?;
        let mut hashes = Vec::with_capacity(m);
        for _ in 0..m {
            hashes.push(ActorHead {
                suffix: r.array()?,
                seq: r.u32()?,
                hash: ChangeHash(r.array()?),
            });
        }
        out.push((doc, hashes));
    }
    Ok(out)
}

impl SignedOp {
    /// Decodes and verifies the signature of an operation received from anyone.
    pub fn decode(bytes: &[u8]) -> Result<SignedOp, OpError> {
        if bytes.len() > MAX_OP_LEN {
            return Err(DecodeError::TooLong {
                len: bytes.len() as u64,
                max: MAX_OP_LEN as u64,
            }
            .into());
        }
        if bytes.len() < 64 {
            return Err(DecodeError::Truncated.into());
        }
        let (body, sig) = bytes.split_at(bytes.len() - 64);
        let op = decode_body(body)?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| DecodeError::Truncated)?;
        crypto::verify(&op.author.0, &[OP_SIG_CONTEXT, body].concat(), &sig).map_err(|_| OpError::Signature)?;
        Ok(SignedOp {
            op,
            bytes: bytes.to_vec(),
            hash: OpHash(*blake3::hash(bytes).as_bytes()),
        })
    }

    /// The operation.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// Its hash (and, for create and rotate, the id of the epoch it starts).
    pub fn hash(&self) -> OpHash {
        self.hash
    }

    /// Its encoding, signature included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn decode_body(body: &[u8]) -> Result<Op, DecodeError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    if version != OP_VERSION {
        return Err(DecodeError::Version(version));
    }
    let group = GroupId(r.array()?);
    let author = MemberId(r.array()?);
    let created_at_ms = r.i64()?;
    let n = r.count(MAX_PARENTS, 32)?;
    let mut parents = Vec::with_capacity(n);
    for _ in 0..n {
        parents.push(OpHash(r.array()?));
    }
    let kind = match r.u8()? {
        1 => OpKind::Create {
            creator: MemberKeys::decode(&mut r)?,
            seal: decode_seal(&mut r)?,
        },
        2 => OpKind::Add {
            keys: MemberKeys::decode(&mut r)?,
            role: Role::decode(r.u8()?)?,
            epoch: KeyId(r.array()?),
            seal: decode_seal(&mut r)?,
        },
        3 => OpKind::Remove {
            member: MemberId(r.array()?),
            heads: decode_heads(&mut r)?,
        },
        4 => OpKind::ChangeRole {
            member: MemberId(r.array()?),
            role: Role::decode(r.u8()?)?,
            heads: decode_heads(&mut r)?,
        },
        5 => OpKind::Leave {
            heads: decode_heads(&mut r)?,
        },
        6 => {
            let n = r.count(MAX_SEALS, 36)?;
            let mut seals = Vec::with_capacity(n);
            for _ in 0..n {
                seals.push(decode_seal(&mut r)?);
            }
            let previous = match r.u8()? {
                0 => None,
                1 => Some(r.var_bytes(MAX_PREVIOUS_LEN)?.to_vec()),
                tag => return Err(DecodeError::UnknownTag { what: "option", tag }),
            };
            OpKind::Rotate { seals, previous }
        }
        tag => return Err(DecodeError::UnknownTag { what: "operation", tag }),
    };
    r.finish()?;
    Ok(Op {
        group,
        author,
        parents,
        created_at_ms,
        kind,
    })
}

/// One member as the resolved state knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Their membership key.
    pub id: MemberId,
    /// Their X25519 key.
    pub box_public: [u8; 32],
    /// Their role now.
    pub role: Role,
    /// When the operation that added them says it was made.
    pub joined_at_ms: i64,
    /// Position of that operation in the resolved order (smaller is longer-standing).
    pub seniority: usize,
    /// The first generation whose documents they may receive: the group's first epoch,
    /// or the history cut whose key their add granted.
    pub sees_from: KeyId,
}

/// The keys of the epochs a rotation follows, carried inside it encrypted under the new
/// key: `count(16) × ([32] epoch id ‖ [32] key)`, sealed with XChaCha20-Poly1305 (the
/// group id as associated data).
pub struct PreviousKeys;

const PREVIOUS_CONTEXT: &[u8] = b"alongside/previous-keys/v1";
const MAX_PREVIOUS_KEYS: usize = 16;

impl PreviousKeys {
    /// Encrypts `keys` (at most 16; extra ones are left out) under `new_key`.
    pub fn seal<R: rand::CryptoRng>(
        rng: &mut R,
        group: &GroupId,
        new_key: &crypto::SymmetricKey,
        keys: &[(KeyId, crypto::SymmetricKey)],
    ) -> Vec<u8> {
        let keys = &keys[..keys.len().min(MAX_PREVIOUS_KEYS)];
        let mut w = Writer::new();
        w.count(keys.len());
        for (id, key) in keys {
            w.bytes(&id.0).bytes(key.expose());
        }
        let plain = zeroize::Zeroizing::new(w.finish());
        new_key.seal(rng, &[PREVIOUS_CONTEXT, &group.0].concat(), &plain)
    }

    /// Opens what [`PreviousKeys::seal`] made; `None` if it does not open or parse.
    pub fn open(
        group: &GroupId,
        new_key: &crypto::SymmetricKey,
        sealed: &[u8],
    ) -> Option<Vec<(KeyId, crypto::SymmetricKey)>> {
        let plain = new_key.open(&[PREVIOUS_CONTEXT, &group.0].concat(), sealed).ok()?;
        let mut r = Reader::new(&plain);
        let n = r.count(MAX_PREVIOUS_KEYS, 64).ok()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let id = KeyId(r.array().ok()?);
            out.push((id, crypto::SymmetricKey::from_bytes(r.array().ok()?)));
        }
        r.finish().ok()?;
        Some(out)
    }
}

/// A group's membership DAG: every operation received, and the state it resolves to.
///
/// # Budgets
///
/// Everyone some stored add names may author operations, valid or not: an add that is void
/// today may become valid when the removal that voided it turns out void itself, so what
/// its newcomer wrote cannot simply be forgotten. So operations are stored against an
/// *account*: a member who stands in the group (its creator, or anyone resolution found a
/// member, now or before) is their own account; anyone else is charged to whoever first
/// named them in an add, up the chain to someone who stands. An account holds at most
/// [`MAX_OPS_PER_AUTHOR`] operations and [`MAX_BYTES_PER_AUTHOR`] bytes, so fresh keys
/// named by void adds cannot multiply one member's share. The log as a whole holds at most
/// [`MAX_OPS`] operations and [`MAX_LOG_BYTES`] bytes, of which the last
/// [`RESERVED_OPS`] / [`RESERVED_BYTES`] take only what honest members need to remove
/// someone: operations by current facilitators, and rotations and leaves by current
/// members, each account at most [`RESERVED_OPS_PER_AUTHOR`] /
/// [`RESERVED_BYTES_PER_AUTHOR`] there. Which of an over-budget account's operations a
/// device keeps may depend on arrival order; nobody else's are ever refused for it.
/// Operations read back from this device's own store skip the budget (they were admitted
/// once, and a different order must not lose them).
#[derive(Debug, Clone)]
pub struct MembershipLog {
    group: GroupId,
    genesis: OpHash,
    /// Who founded the group.
    creator: MemberId,
    ops: BTreeMap<OpHash, SignedOp>,
    /// Everyone some stored create or add names (valid or not): only they may author.
    known: BTreeSet<MemberId>,
    /// Who first named each known key in an add (the creator has no sponsor).
    sponsor: BTreeMap<MemberId, MemberId>,
    /// Operations and bytes stored per author.
    per_author: BTreeMap<MemberId, Usage>,
    /// What each account holds (recomputed whenever resolution changes who stands).
    accounts: BTreeMap<MemberId, Usage>,
    /// What each account placed in the reserved room.
    reserved: BTreeMap<MemberId, Usage>,
    /// Bytes of every stored operation.
    bytes: usize,
    state: MembershipState,
}

/// The parents of `op` that were left out over budget.
fn left_out_parents(op: &SignedOp, over: &BTreeMap<OpHash, &SignedOp>) -> Vec<OpHash> {
    op.op
        .parents
        .iter()
        .filter(|p| over.contains_key(*p))
        .copied()
        .collect()
}

/// How an operation offered to the log is judged against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// From a peer: every budget applies.
    Budget,
    /// From a peer, built on by a current facilitator's operation: only the log's whole
    /// size applies.
    Vouched,
    /// Read back from this device's own store: admitted once already.
    Restore,
}

/// Operations and bytes held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    ops: usize,
    bytes: usize,
}

impl Usage {
    fn add(&mut self, bytes: usize) {
        self.ops += 1;
        self.bytes += bytes;
    }

    fn fits(&self, bytes: usize, max_ops: usize, max_bytes: usize) -> bool {
        self.ops < max_ops && self.bytes + bytes <= max_bytes
    }
}

impl MembershipLog {
    /// Starts a log from the group's create operation.
    pub fn new(create: SignedOp) -> Result<MembershipLog, OpError> {
        if !matches!(create.op.kind, OpKind::Create { .. }) || !create.op.parents.is_empty() {
            return Err(OpError::SecondCreate);
        }
        let mut log = MembershipLog {
            group: create.op.group,
            genesis: create.hash,
            creator: create.op.author,
            ops: BTreeMap::new(),
            known: BTreeSet::from([create.op.author]),
            sponsor: BTreeMap::new(),
            per_author: BTreeMap::new(),
            accounts: BTreeMap::new(),
            reserved: BTreeMap::new(),
            bytes: create.bytes.len(),
            state: MembershipState::default(),
        };
        log.per_author
            .entry(create.op.author)
            .or_default()
            .add(create.bytes.len());
        log.ops.insert(create.hash, create);
        log.resolve();
        Ok(log)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The create operation's hash (the first epoch's id).
    pub fn genesis(&self) -> OpHash {
        self.genesis
    }

    /// The resolved state.
    pub fn state(&self) -> &MembershipState {
        &self.state
    }

    /// Every operation, by hash.
    pub fn ops(&self) -> impl Iterator<Item = &SignedOp> {
        self.ops.values()
    }

    /// How many operations the log holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always `false`: a log holds at least its create operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Looks up one operation.
    pub fn get(&self, hash: &OpHash) -> Option<&SignedOp> {
        self.ops.get(hash)
    }

    /// The operations resolution found valid, in resolved order.
    pub fn valid_ops(&self) -> impl Iterator<Item = &SignedOp> {
        self.state.valid.iter().filter_map(|h| self.ops.get(h))
    }

    /// The operations no other operation names as a parent (what a new operation follows).
    pub fn heads(&self) -> Vec<OpHash> {
        let mut named = BTreeSet::new();
        for op in self.ops.values() {
            named.extend(op.op.parents.iter().copied());
        }
        self.ops.keys().filter(|h| !named.contains(h)).copied().collect()
    }

    /// Adds a verified operation and re-resolves. Returns `false` if it was already known.
    pub fn insert(&mut self, op: SignedOp) -> Result<bool, OpError> {
        let added = self.insert_unresolved(op, Charge::Budget)?;
        if added {
            self.resolve();
        }
        Ok(added)
    }

    /// Adds verified operations in any order (parents may come later in `ops`), resolving
    /// once. Returns how many were new, and the operations whose parents are still
    /// missing. Any other refusal is an error (and nothing after it is stored).
    pub fn insert_all(&mut self, ops: &[SignedOp]) -> Result<(usize, Vec<SignedOp>), OpError> {
        self.insert_batch(ops, Charge::Budget)
    }

    /// [`MembershipLog::insert_all`] for operations read back from this device's own
    /// store: they were admitted once, so the budget is not applied again (in another
    /// order it might refuse a different one, and the group would not open).
    pub fn restore_all(&mut self, ops: &[SignedOp]) -> Result<(usize, Vec<SignedOp>), OpError> {
        self.insert_batch(ops, Charge::Restore)
    }

    fn insert_batch(&mut self, ops: &[SignedOp], charge: Charge) -> Result<(usize, Vec<SignedOp>), OpError> {
        // Everyone an add in the batch names may author too, whichever comes first — if
        // the add's author may (so the batch is read until nobody new is named).
        let adds: Vec<(MemberId, MemberId)> = ops
            .iter()
            .filter_map(|o| match &o.op.kind {
                OpKind::Add { keys, .. } => Some((keys.member, o.op.author)),
                _ => None,
            })
            .collect();
        loop {
            let before = self.known.len();
            for (key, by) in &adds {
                if self.known.contains(by) {
                    self.name(*key, *by);
                }
            }
            if self.known.len() == before {
                break;
            }
        }
        // Parents first (Kahn's algorithm over the batch), so one pass stores everything
        // whatever order the operations came in.
        let batch: BTreeMap<OpHash, &SignedOp> = ops
            .iter()
            .filter(|o| !self.ops.contains_key(&o.hash))
            .map(|o| (o.hash, o))
            .collect();
        let mut waiting_on: BTreeMap<OpHash, usize> = BTreeMap::new();
        let mut children: BTreeMap<OpHash, Vec<OpHash>> = BTreeMap::new();
        for (h, o) in &batch {
            let pending: BTreeSet<&OpHash> = o.op.parents.iter().filter(|p| batch.contains_key(p)).collect();
            for p in &pending {
                children.entry(**p).or_default().push(*h);
            }
            waiting_on.insert(*h, pending.len());
        }
        let mut ready: Vec<OpHash> = waiting_on.iter().filter(|(_, n)| **n == 0).map(|(h, _)| *h).collect();
        let mut added = 0;
        let mut refused = None;
        let mut missing = Vec::new();
        // Operations over their account's budget: not stored, unless a current
        // facilitator's operation later in the batch builds on them.
        let mut over: BTreeMap<OpHash, &SignedOp> = BTreeMap::new();
        while let Some(h) = ready.pop() {
            let op = batch[&h];
            let held = left_out_parents(op, &over);
            let outcome = if held.is_empty() {
                self.insert_unresolved(op.clone(), charge)
            } else if charge == Charge::Budget && self.vouches(&op.op) {
                self.admit_vouched(&held, &mut over).and_then(|n| {
                    added += n;
                    self.insert_unresolved(op.clone(), charge)
                })
            } else {
                Err(OpError::TooMany)
            };
            match outcome {
                Ok(true) => added += 1,
                Ok(false) => {}
                // A parent neither stored nor in the batch: it and its descendants wait.
                Err(OpError::MissingParent) => {
                    missing.push(op.clone());
                    continue;
                }
                // Over budget: left out, and so is whatever builds on it (unless vouched).
                Err(OpError::TooMany) => {
                    over.insert(h, op);
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            for c in children.get(&h).into_iter().flatten() {
                let n = waiting_on.get_mut(c).expect("every child is in the batch");
                *n -= 1;
                if *n == 0 {
                    ready.push(*c);
                }
            }
        }
        if added > 0 {
            self.resolve();
        }
        if let Some(e) = refused {
            return Err(e);
        }
        if !over.is_empty() {
            tracing::debug!(
                operations = over.len(),
                "membership operations over their author's budget were left out"
            );
        }
        // Whatever never became ready waits on a missing parent too.
        for (h, o) in &batch {
            if !self.ops.contains_key(h) && !over.contains_key(h) && !missing.iter().any(|m| m.hash == *h) {
                missing.push((*o).clone());
            }
        }
        Ok((added, missing))
    }

    /// Whether `op`'s author may vouch for operations left out over budget that it builds
    /// on: a current facilitator. Honest facilitators build only on what their own device
    /// admitted, so a removal still reaches a device that left out some of what the
    /// removed member wrote.
    fn vouches(&self, op: &Op) -> bool {
        self.state
            .members
            .get(&op.author)
            .is_some_and(|m| m.role == Role::Facilitator)
    }

    /// Stores the operations `hashes` left out over budget, ancestors first, within the
    /// log's whole size only. Returns how many were stored.
    fn admit_vouched(&mut self, hashes: &[OpHash], over: &mut BTreeMap<OpHash, &SignedOp>) -> Result<usize, OpError> {
        let mut stored = 0;
        let mut stack: Vec<OpHash> = hashes.to_vec();
        while let Some(h) = stack.last().copied() {
            let Some(op) = over.get(&h).copied() else {
                stack.pop();
                continue;
            };
            let first = left_out_parents(op, over);
            if !first.is_empty() {
                stack.extend(first);
                continue;
            }
            stack.pop();
            over.remove(&h);
            if self.insert_unresolved(op.clone(), Charge::Vouched)? {
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Records that `by` named `key` in an add (the first such add sponsors the key).
    fn name(&mut self, key: MemberId, by: MemberId) {
        if self.known.insert(key) {
            self.sponsor.insert(key, by);
        }
    }

    /// Whether `who` stands in the group on their own: its creator, or someone resolution
    /// found a member (now or before).
    fn stands(&self, who: &MemberId) -> bool {
        *who == self.creator || self.state.members.contains_key(who) || self.state.departed.contains_key(who)
    }

    /// The account `author`'s operations are charged to: up the chain of sponsors to the
    /// first who stands (a chain that loops is charged to where it loops).
    fn account(&self, author: &MemberId) -> MemberId {
        let mut who = *author;
        let mut seen = BTreeSet::new();
        while !self.stands(&who) && seen.insert(who) {
            match self.sponsor.get(&who) {
                Some(s) => who = *s,
                None => break,
            }
        }
        who
    }

    /// Whether `op` may use the reserved room: an operation of a current facilitator, or a
    /// current member's rotation or leave.
    fn may_use_reserve(&self, op: &Op) -> bool {
        let Some(info) = self.state.members.get(&op.author) else {
            return false;
        };
        info.role == Role::Facilitator || matches!(op.kind, OpKind::Rotate { .. } | OpKind::Leave { .. })
    }

    /// Checks `op` against the budgets (see [`MembershipLog`]) and books it.
    fn charge(&mut self, op: &SignedOp) -> Result<(), OpError> {
        let size = op.bytes.len();
        let account = self.account(&op.op.author);
        let held = self.accounts.get(&account).copied().unwrap_or_default();
        if !held.fits(size, MAX_OPS_PER_AUTHOR, MAX_BYTES_PER_AUTHOR) {
            return Err(OpError::TooMany);
        }
        let ordinary = Usage {
            ops: self.ops.len(),
            bytes: self.bytes,
        }
        .fits(size, MAX_OPS - RESERVED_OPS, MAX_LOG_BYTES - RESERVED_BYTES);
        if !ordinary {
            let whole = Usage {
                ops: self.ops.len(),
                bytes: self.bytes,
            }
            .fits(size, MAX_OPS, MAX_LOG_BYTES);
            let share = self.reserved.get(&account).copied().unwrap_or_default();
            if !whole
                || !self.may_use_reserve(&op.op)
                || !share.fits(size, RESERVED_OPS_PER_AUTHOR, RESERVED_BYTES_PER_AUTHOR)
            {
                return Err(OpError::TooMany);
            }
            self.reserved.entry(account).or_default().add(size);
        }
        self.accounts.entry(account).or_default().add(size);
        Ok(())
    }

    /// Stores one operation without resolving, judged as `charge` says.
    fn insert_unresolved(&mut self, op: SignedOp, charge: Charge) -> Result<bool, OpError> {
        if op.op.group != self.group {
            return Err(OpError::WrongGroup);
        }
        if self.ops.contains_key(&op.hash) {
            return Ok(false);
        }
        if matches!(op.op.kind, OpKind::Create { .. }) {
            return Err(OpError::SecondCreate);
        }
        if !op.op.parents.iter().all(|p| self.ops.contains_key(p)) || op.op.parents.is_empty() {
            return Err(OpError::MissingParent);
        }
        // Someone no operation ever named has no business in the log (a member's
        // operations always follow the add that made them one).
        if !self.known.contains(&op.op.author) {
            return Err(OpError::NotAMember);
        }
        match charge {
            Charge::Budget => self.charge(&op)?,
            Charge::Vouched | Charge::Restore => {
                let whole = Usage {
                    ops: self.ops.len(),
                    bytes: self.bytes,
                };
                if charge == Charge::Vouched && !whole.fits(op.bytes.len(), MAX_OPS, MAX_LOG_BYTES) {
                    return Err(OpError::TooMany);
                }
                // Still booked, so later operations are judged on everything held.
                let account = self.account(&op.op.author);
                self.accounts.entry(account).or_default().add(op.bytes.len());
            }
        }
        self.per_author.entry(op.op.author).or_default().add(op.bytes.len());
        self.bytes += op.bytes.len();
        if let OpKind::Add { keys, .. } = &op.op.kind {
            self.name(keys.member, op.op.author);
        }
        self.ops.insert(op.hash, op);
        Ok(true)
    }

    fn resolve(&mut self) {
        self.state = resolve::resolve(&self.group, self.genesis, &self.ops);
        // Who stands may have changed, and with it whose account each operation is in.
        let mut accounts: BTreeMap<MemberId, Usage> = BTreeMap::new();
        for (author, usage) in &self.per_author {
            let a = accounts.entry(self.account(author)).or_default();
            a.ops += usage.ops;
            a.bytes += usage.bytes;
        }
        self.accounts = accounts;
    }
}
