//! One document's replica: the live Automerge document, an index of its change DAG, and
//! the validation every incoming change passes *before* Automerge sees it.
//!
//! Automerge 0.12 trusts its input: a change with a sequence gap hits an assertion, and an
//! actor's concurrent branches are accepted silently. So untrusted bytes are only ever
//! parsed into a scratch value inside `catch_unwind`, their metadata is checked against
//! [`ChangeIndex`], and only then are they applied to (or adopted as) the live document.
//!
//! The checks, per DESIGN.md:
//! 1. the actor id is a member key plus an install suffix, and that member may write this
//!    document ([`WritePolicy`]);
//! 2. the change has exactly the next sequence number for its actor and descends from that
//!    actor's previous change (so no gaps and no forks);
//! 3. it is covered: reachable in the hash DAG from a change hash its author signed in the
//!    same unit;
//! 4. all its dependencies are present (otherwise the unit waits; see [`Ingest::MissingDeps`]).
//!
//! A unit with any invalid change is rejected whole and leaves the replica untouched.

use std::collections::BTreeMap;

// Change hashes are SHA-256 outputs; foldhash with a per-process random seed hashes them
// several times faster than SipHash, which matters with a quarter million changes.
use foldhash::{HashMap, HashMapExt, HashSet};

use automerge::{ActorId, Automerge, Change, ReadDoc};
use thiserror::Error;

use crate::crypto::SigningSecret;
use crate::ids::{ChangeHash, DocId, GroupId, KeyId, MemberId};
use crate::membership::ActorHead;
use crate::payload_budget::{self, Refusal};
use crate::unit::{ChangeSignature, Payload, PayloadKind};

/// Bytes of an install suffix appended to the membership key in an actor id.
pub const ACTOR_SUFFIX_LEN: usize = 8;
/// Most actors one document may have (bounds clocks, signatures per payload and snapshots).
pub const MAX_ACTORS: usize = 2048;
/// Most actors (installs) one member may use in one document.
pub const MAX_ACTORS_PER_AUTHOR: usize = 64;

/// Who may write a document, as the group's membership currently decides.
pub trait WritePolicy {
    /// Whether `author` may write the document being validated.
    fn may_write(&self, author: &MemberId) -> bool;

    /// If `author`'s writing to this document is limited — they left or were removed, or
    /// (the group document) they are not a facilitator now — how far. `None` for a member
    /// who may write it freely.
    fn limit(&self, _author: &MemberId) -> Option<Limit> {
        None
    }
}

/// How far a member's writing to one document is limited (see [`WritePolicy::limit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The latest of their changes that every removal or demotion of them recorded. Their
    /// changes stay acceptable only up to these, or where a change not so limited in the
    /// same unit depends on them.
    pub heads: Vec<ActorHead>,
    /// What a change past `heads` is refused as: [`Rejection::AfterRemoval`] for someone
    /// who left or was removed, [`Rejection::NotAllowed`] for someone limited by role.
    pub refusal: Rejection,
}

/// Why a unit's changes were refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The Automerge bytes could not be parsed (or made Automerge panic).
    #[error("the changes could not be parsed")]
    Malformed,
    /// An actor id is not a membership key plus an install suffix.
    #[error("a change has an actor id that names no member")]
    BadActor,
    /// The author may not write this document.
    #[error("a change is by someone who may not write this document")]
    NotAllowed,
    /// A sequence number is not the next one for its actor.
    #[error("a change skips or repeats a sequence number")]
    SequenceGap,
    /// A change does not descend from its actor's previous change.
    #[error("a change branches off its actor's own history")]
    Fork,
    /// A change is not covered by a signature of its author.
    #[error("a change is not signed by its author")]
    Unsigned,
    /// A signature in the unit does not verify.
    #[error("a signature in the unit is not valid")]
    BadSignature,
    /// The unit carries a change whose dependencies are missing and cannot be resolved.
    #[error("the unit's changes are inconsistent")]
    Inconsistent,
    /// The document would have more actors than allowed (in all, or for one author).
    #[error("the changes use more actor ids than allowed")]
    TooManyActors,
    /// A change by a member who left or was removed, written after that, which no
    /// current member's change depends on.
    #[error("a change was written after its author left the group")]
    AfterRemoval,
    /// The payload would cost more than a received payload may: it inflates past
    /// [`crate::payload_budget::MAX_INFLATED`], holds more than
    /// [`crate::payload_budget::MAX_OPS`] operations or a value longer than
    /// [`crate::payload_budget::MAX_VALUE_LEN`]. Refused before Automerge saw it.
    #[error("the changes are larger than a received unit may be")]
    TooLarge(#[source] Refusal),
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Malformed(_) => Rejection::Malformed,
            other => Rejection::TooLarge(other),
        }
    }
}

/// What happened to a unit offered to [`Replica::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingest {
    /// New changes were validated and applied.
    Applied {
        /// How many changes were new.
        changes: usize,
    },
    /// Every change was already present.
    Duplicate,
    /// Some dependencies are not here yet; nothing was applied.
    MissingDeps(Vec<ChangeHash>),
}

/// Per change: its actor, sequence number and vector clock (max seq per actor in its
/// ancestry, itself included). The clock is what makes fork detection and signature
/// coverage O(actors) per change.
///
/// Clocks live in one arena per index (and per staged unit): a quarter million changes
/// mean a quarter million clocks, and one allocation each would dominate validation.
#[derive(Debug, Clone)]
struct IndexEntry {
    actor: u32,
    seq: u32,
    clock_at: usize,
    clock_len: u32,
}

/// The validated change DAG of one document.
#[derive(Debug, Default, Clone)]
pub struct ChangeIndex {
    actors: Vec<ActorId>,
    actor_index: HashMap<ActorId, u32>,
    max_seq: Vec<u32>,
    changes: HashMap<ChangeHash, IndexEntry>,
    clocks: Vec<u32>,
}

/// The metadata validation needs from one change; `actor` indexes [`Metas::actors`].
#[derive(Debug, Clone)]
struct Meta {
    hash: ChangeHash,
    actor: u32,
    seq: u64,
    deps: Vec<ChangeHash>,
}

/// The metadata of a payload's changes, with their actors interned.
#[derive(Debug, Default)]
struct Metas {
    actors: Vec<ActorId>,
    list: Vec<Meta>,
}

impl Metas {
    fn push(
        &mut self,
        interned: &mut HashMap<ActorId, u32>,
        actor: &ActorId,
        hash: ChangeHash,
        seq: u64,
        deps: Vec<ChangeHash>,
    ) {
        let actor = match interned.get(actor) {
            Some(i) => *i,
            None => {
                let i = self.actors.len() as u32;
                self.actors.push(actor.clone());
                interned.insert(actor.clone(), i);
                i
            }
        };
        self.list.push(Meta { hash, actor, seq, deps });
    }
}

/// Index entries checked but not yet committed (a unit is accepted or rejected whole).
#[derive(Debug, Default, Clone)]
struct Staged {
    changes: HashMap<ChangeHash, IndexEntry>,
    max_seq: HashMap<u32, u32>,
    new_actors: Vec<ActorId>,
    clocks: Vec<u32>,
    buf: Vec<u32>,
}

impl Staged {
    fn with_capacity(n: usize) -> Staged {
        Staged {
            changes: HashMap::with_capacity(n),
            ..Staged::default()
        }
    }
}

impl ChangeIndex {
    /// How many changes are indexed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether no change is indexed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether `hash` is indexed.
    pub fn contains(&self, hash: &ChangeHash) -> bool {
        self.changes.contains_key(hash)
    }

    /// The members whose changes are indexed, once per install.
    pub fn authors(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.actors.iter().filter_map(actor_member)
    }

    /// The latest change of each install (actor) of `member`, sorted.
    pub fn actor_heads(&self, member: &MemberId) -> Vec<ActorHead> {
        let mine: Vec<(u32, [u8; ACTOR_SUFFIX_LEN])> = self
            .actors
            .iter()
            .enumerate()
            .filter(|(_, a)| actor_member(a) == Some(*member))
            .filter_map(|(i, a)| Some((i as u32, a.to_bytes()[32..].try_into().ok()?)))
            .collect();
        let mut heads: Vec<ActorHead> = self
            .changes
            .iter()
            .filter_map(|(hash, e)| {
                let (_, suffix) = mine.iter().find(|(slot, _)| *slot == e.actor)?;
                (e.seq == self.max_seq[e.actor as usize]).then_some(ActorHead {
                    suffix: *suffix,
                    seq: e.seq,
                    hash: *hash,
                })
            })
            .collect();
        heads.sort();
        heads
    }

    /// Index slots for a payload's actors: existing slots, or provisional ones after the
    /// last (recorded in `staged` and added only if the unit is accepted). Refuses a unit
    /// that would give the document more than [`MAX_ACTORS`] actors, or one author more
    /// than [`MAX_ACTORS_PER_AUTHOR`].
    fn slots_for(&self, actors: &[ActorId], staged: &mut Staged) -> Result<Vec<u32>, Rejection> {
        let mut slots = Vec::with_capacity(actors.len());
        for actor in actors {
            let slot = match self.actor_index.get(actor) {
                Some(i) => *i,
                None => {
                    staged.new_actors.push(actor.clone());
                    (self.actors.len() + staged.new_actors.len() - 1) as u32
                }
            };
            slots.push(slot);
        }
        if !staged.new_actors.is_empty() {
            if self.actors.len() + staged.new_actors.len() > MAX_ACTORS {
                return Err(Rejection::TooManyActors);
            }
            let mut per_author: HashMap<MemberId, usize> = HashMap::new();
            for a in self.actors.iter().chain(&staged.new_actors) {
                if let Some(m) = actor_member(a) {
                    *per_author.entry(m).or_default() += 1;
                }
            }
            if per_author.values().any(|n| *n > MAX_ACTORS_PER_AUTHOR) {
                return Err(Rejection::TooManyActors);
            }
        }
        Ok(slots)
    }

    /// The actor of `slot`, provisional ones included.
    fn actor_at<'a>(&'a self, staged: &'a Staged, slot: u32) -> &'a ActorId {
        let slot = slot as usize;
        self.actors
            .get(slot)
            .unwrap_or_else(|| &staged.new_actors[slot - self.actors.len()])
    }

    /// The clock of `hash`, staged or committed.
    fn clock<'a>(&'a self, staged: &'a Staged, hash: &ChangeHash) -> Option<&'a [u32]> {
        let slice = |arena: &'a [u32], e: &IndexEntry| &arena[e.clock_at..e.clock_at + e.clock_len as usize];
        match staged.changes.get(hash) {
            Some(e) => Some(slice(&staged.clocks, e)),
            None => self.changes.get(hash).map(|e| slice(&self.clocks, e)),
        }
    }

    /// Checks the change `m` of index actor `slot` against the index plus what is already
    /// staged, and stages it. Dependencies are looked up first, so an out-of-order list
    /// fails with [`Rejection::Inconsistent`] before any sequence check: the staged set is
    /// always closed under dependencies, and a sequence or fork error is always real.
    fn stage(&self, staged: &mut Staged, slot: u32, m: &Meta) -> Result<(), Rejection> {
        let mut clock = std::mem::take(&mut staged.buf);
        clock.clear();
        clock.resize(self.actors.len() + staged.new_actors.len(), 0);
        for dep in &m.deps {
            let dep_clock = self.clock(staged, dep).ok_or(Rejection::Inconsistent)?;
            for (c, v) in clock.iter_mut().zip(dep_clock) {
                *c = (*c).max(*v);
            }
        }
        let seq = u32::try_from(m.seq).map_err(|_| Rejection::SequenceGap)?;
        let recorded = self.max_seq.get(slot as usize).copied().unwrap_or(0);
        let current = staged.max_seq.get(&slot).copied().unwrap_or(recorded);
        if seq != current + 1 {
            return Err(Rejection::SequenceGap);
        }
        if clock[slot as usize] != seq - 1 {
            return Err(Rejection::Fork);
        }
        clock[slot as usize] = seq;
        staged.max_seq.insert(slot, seq);
        let clock_at = staged.clocks.len();
        staged.clocks.extend_from_slice(&clock);
        staged.changes.insert(
            m.hash,
            IndexEntry {
                actor: slot,
                seq,
                clock_at,
                clock_len: clock.len() as u32,
            },
        );
        staged.buf = clock;
        Ok(())
    }

    /// Stages every change of `order` (payload actors mapped through `slots`) into `staged`.
    fn stage_all<'a>(
        &self,
        mut staged: Staged,
        order: impl IntoIterator<Item = &'a Meta>,
        slots: &[u32],
    ) -> Result<Staged, Rejection> {
        for m in order {
            self.stage(&mut staged, slots[m.actor as usize], m)?;
        }
        Ok(staged)
    }

    fn commit(&mut self, staged: Staged) {
        for actor in staged.new_actors {
            self.actor_index.insert(actor.clone(), self.actors.len() as u32);
            self.actors.push(actor);
            self.max_seq.push(0);
        }
        for (actor, seq) in staged.max_seq {
            self.max_seq[actor as usize] = seq;
        }
        let offset = self.clocks.len();
        self.clocks.extend_from_slice(&staged.clocks);
        let mut changes = staged.changes;
        if offset > 0 {
            for e in changes.values_mut() {
                e.clock_at += offset;
            }
        }
        if self.changes.is_empty() {
            self.changes = changes;
        } else {
            self.changes.extend(changes);
        }
    }
}

/// Derives a member from an actor id (`membership key ‖ install suffix`).
pub fn actor_member(actor: &ActorId) -> Option<MemberId> {
    let bytes = actor.to_bytes();
    if bytes.len() != 32 + ACTOR_SUFFIX_LEN {
        return None;
    }
    Some(MemberId(bytes[..32].try_into().ok()?))
}

/// The actor id of `member` on the install with `suffix`.
pub fn actor_for(member: &MemberId, suffix: &[u8; ACTOR_SUFFIX_LEN]) -> ActorId {
    ActorId::from([&member.0[..], &suffix[..]].concat())
}

/// Parsed, not yet validated changes.
enum Parsed {
    Changes(Vec<Change>),
    Document(Box<Automerge>),
}

impl Parsed {
    /// Parses a payload someone else sent: measured first ([`payload_budget`]), so that
    /// Automerge never inflates or materialises more than the budget allows.
    fn from_untrusted(kind: PayloadKind, data: &[u8]) -> Result<Parsed, Rejection> {
        payload_budget::measure(kind, data)?;
        Parsed::from_payload(kind, data)
    }

    /// Parses a payload without measuring it: only for what this device saved itself.
    fn from_payload(kind: PayloadKind, data: &[u8]) -> Result<Parsed, Rejection> {
        // Automerge may panic on hostile bytes: parse only into throwaway values.
        let result = crate::guard::catch(|| -> Result<Parsed, Rejection> {
            match kind {
                PayloadKind::Change => Change::from_bytes(data.to_vec())
                    .map(|c| Parsed::Changes(vec![c]))
                    .map_err(|_| Rejection::Malformed),
                PayloadKind::Bundle => {
                    let bundle = automerge::Bundle::try_from(data).map_err(|_| Rejection::Malformed)?;
                    bundle
                        .to_changes()
                        .map(Parsed::Changes)
                        .map_err(|_| Rejection::Malformed)
                }
                PayloadKind::Document => {
                    let opts = automerge::LoadOptions::new()
                        .on_partial_load(automerge::OnPartialLoad::Error)
                        .verification_mode(automerge::VerificationMode::Check);
                    Automerge::load_with_options(data, opts)
                        .map(|d| Parsed::Document(Box::new(d)))
                        .map_err(|_| Rejection::Malformed)
                }
            }
        });
        result.unwrap_or(Err(Rejection::Malformed))
    }

    fn metas(&self) -> Result<Metas, Rejection> {
        let to_hashes = |deps: &[automerge::ChangeHash]| deps.iter().map(|d| ChangeHash(d.0)).collect();
        let result = crate::guard::catch(|| {
            let mut out = Metas::default();
            let mut interned = HashMap::new();
            match self {
                Parsed::Changes(changes) => {
                    out.list.reserve(changes.len());
                    for c in changes {
                        out.push(
                            &mut interned,
                            c.actor_id(),
                            ChangeHash(c.hash().0),
                            c.seq(),
                            to_hashes(c.deps()),
                        );
                    }
                }
                Parsed::Document(doc) => {
                    let metas = doc.get_changes_meta(&[]);
                    out.list.reserve(metas.len());
                    for c in &metas {
                        out.push(&mut interned, &c.actor, ChangeHash(c.hash.0), c.seq, to_hashes(&c.deps));
                    }
                }
            }
            out
        });
        result.map_err(|_| Rejection::Malformed)
    }
}

/// A live document with its validated index and the author signatures it has received.
pub struct Replica {
    group: GroupId,
    id: DocId,
    doc: Automerge,
    index: ChangeIndex,
    signatures: BTreeMap<ChangeHash, ChangeSignature>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the content: only what identifies the replica.
        f.debug_struct("Replica")
            .field("id", &self.id)
            .field("changes", &self.index.len())
            .finish()
    }
}

impl Replica {
    /// An empty replica of `id`.
    pub fn new(group: GroupId, id: DocId) -> Replica {
        Replica {
            group,
            id,
            doc: Automerge::new(),
            index: ChangeIndex::default(),
            signatures: BTreeMap::new(),
        }
    }

    /// Rebuilds a replica from a saved document this device wrote itself (authenticated by
    /// the profile's data key) and the signatures stored with it.
    pub fn from_trusted_save(
        group: GroupId,
        id: DocId,
        saved: &[u8],
        signatures: Vec<ChangeSignature>,
    ) -> Result<Replica, Rejection> {
        let parsed = Parsed::from_payload(PayloadKind::Document, saved)?;
        let metas = parsed.metas()?;
        let Parsed::Document(doc) = parsed else {
            return Err(Rejection::Malformed);
        };
        let mut index = ChangeIndex::default();
        let mut fresh = Staged::with_capacity(metas.list.len());
        let slots = index.slots_for(&metas.actors, &mut fresh)?;
        let staged = match index.stage_all(fresh.clone(), &metas.list, &slots) {
            Ok(staged) => staged,
            Err(_) => index.stage_all(fresh, topo_order(&metas.list, &index)?, &slots)?,
        };
        index.commit(staged);
        Ok(Replica {
            group,
            id,
            doc: *doc,
            index,
            signatures: signatures.into_iter().map(|s| (s.hash, s)).collect(),
        })
    }

    /// The document id.
    pub fn id(&self) -> DocId {
        self.id
    }

    /// The live document, for the typed model to read.
    pub(crate) fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The validated change index.
    pub fn index(&self) -> &ChangeIndex {
        &self.index
    }

    /// Every author signature held for this document.
    pub fn signatures(&self) -> impl Iterator<Item = &ChangeSignature> {
        self.signatures.values()
    }

    /// The current heads.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads().into_iter().map(|h| ChangeHash(h.0)).collect()
    }

    /// Every change hash in the document.
    pub fn change_hashes(&self) -> Vec<ChangeHash> {
        self.index.changes.keys().copied().collect()
    }

    /// The dependencies of change `hash`, if it is here.
    pub fn deps_of(&self, hash: &ChangeHash) -> Vec<ChangeHash> {
        self.doc
            .get_change_meta_by_hash(&automerge::ChangeHash(hash.0))
            .map(|m| m.deps.iter().map(|d| ChangeHash(d.0)).collect())
            .unwrap_or_default()
    }

    /// A saved copy of the whole document.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The payload that gives a peer with nothing the whole document: a saved document
    /// with the signatures of every author-head.
    pub fn document_payload(&self) -> Payload {
        let heads = author_heads(&self.index);
        Payload {
            kind: PayloadKind::Document,
            data: self.doc.save(),
            signatures: heads.iter().filter_map(|h| self.signatures.get(h).cloned()).collect(),
        }
    }

    /// The payload that brings a peer holding `have` up to date: a bundle of the changes
    /// they lack, with the signatures of their author-heads.
    pub fn bundle_payload(&self, have: &[ChangeHash]) -> Payload {
        let have: Vec<automerge::ChangeHash> = have.iter().map(|h| automerge::ChangeHash(h.0)).collect();
        let hashes: Vec<automerge::ChangeHash> = self.doc.get_changes_meta(&have).into_iter().map(|m| m.hash).collect();
        self.bundle_of(hashes)
    }

    /// The payloads that bring a peer holding `have` (nothing: `&[]`) up to date, in the
    /// order they must be applied. A peer with nothing gets one saved document if the
    /// whole document has at most `max_ops` operations. Otherwise the changes are cut into
    /// bundles of about `max_ops` operations, but only at **covered points**: where the
    /// latest change of every actor in the bundle so far carries its author's signature, so
    /// each bundle validates on its own once those before it are applied. An interrupted
    /// transfer keeps every bundle that arrived; the next reconciliation sends the rest.
    ///
    /// Every payload is measured as its receiver will measure it ([`payload_budget`]): a
    /// saved document over the budget is sent as bundles instead, and a bundle over it is
    /// cut again, at covered points, into smaller ones (a piece that has no covered point
    /// left to cut at goes as it is).
    pub fn catch_up_payloads(&self, have: &[ChangeHash], max_ops: u64) -> Vec<Payload> {
        let have: Vec<automerge::ChangeHash> = have.iter().map(|h| automerge::ChangeHash(h.0)).collect();
        let metas = self.doc.get_changes_meta(&have);
        if have.is_empty() && metas.iter().map(ops_of).sum::<u64>() <= max_ops {
            let whole = self.document_payload();
            if payload_budget::measure(whole.kind, &whole.data).is_ok() {
                return vec![whole];
            }
        }
        let mut out = Vec::new();
        for piece in self.cut_at_covered_points(&metas, max_ops) {
            self.push_bundles(piece, max_ops, &mut out);
        }
        out
    }

    /// Pushes a bundle of `metas`, or, if its receiver would refuse it as too large,
    /// bundles of smaller covered pieces of it.
    fn push_bundles(&self, metas: &[automerge::ChangeMetadata<'_>], max_ops: u64, out: &mut Vec<Payload>) {
        let bundle = self.bundle_of(metas.iter().map(|m| m.hash).collect());
        if metas.len() > 1 && payload_budget::measure(bundle.kind, &bundle.data).is_err() {
            let smaller = (metas.iter().map(ops_of).sum::<u64>() / 2).clamp(1, max_ops);
            let pieces = self.cut_at_covered_points(metas, smaller);
            if pieces.len() > 1 {
                for piece in pieces {
                    self.push_bundles(piece, smaller, out);
                }
                return;
            }
        }
        out.push(bundle);
    }

    /// Cuts `metas` (in causal order) into pieces of at least `max_ops` operations, each
    /// ending at a covered point (the last piece wherever the changes end).
    fn cut_at_covered_points<'m, 'a>(
        &self,
        metas: &'m [automerge::ChangeMetadata<'a>],
        max_ops: u64,
    ) -> Vec<&'m [automerge::ChangeMetadata<'a>]> {
        let mut pieces = Vec::new();
        let (mut start, mut ops) = (0, 0u64);
        let mut unsigned: HashSet<automerge::ActorId> = HashSet::default();
        for (i, m) in metas.iter().enumerate() {
            ops += ops_of(m);
            if self.signatures.contains_key(&ChangeHash(m.hash.0)) {
                unsigned.remove(m.actor.as_ref());
            } else {
                unsigned.insert(m.actor.clone().into_owned());
            }
            if ops >= max_ops && unsigned.is_empty() {
                pieces.push(&metas[start..=i]);
                (start, ops) = (i + 1, 0);
            }
        }
        if start < metas.len() {
            pieces.push(&metas[start..]);
        }
        pieces
    }

    /// A bundle of `hashes` with the signatures of its author-heads.
    fn bundle_of(&self, hashes: Vec<automerge::ChangeHash>) -> Payload {
        let lacking: HashSet<ChangeHash> = hashes.iter().map(|h| ChangeHash(h.0)).collect();
        let bundle = self.doc.bundle(hashes).expect("hashes come from the document itself");
        let mut sub = ChangeIndex::default();
        for h in &lacking {
            if let Some(e) = self.index.changes.get(h) {
                sub.changes.insert(*h, e.clone());
            }
        }
        sub.actors = self.index.actors.clone();
        Payload {
            kind: PayloadKind::Bundle,
            data: bundle.bytes().to_vec(),
            signatures: author_heads(&sub)
                .iter()
                .filter_map(|h| self.signatures.get(h).cloned())
                .collect(),
        }
    }

    /// How many changes in the document `member` made, under any install (an actor's
    /// changes are numbered from 1 without gaps, so its count is its last number).
    pub fn changes_by(&self, member: &MemberId) -> usize {
        self.index
            .actors
            .iter()
            .zip(&self.index.max_seq)
            .filter(|(a, _)| actor_member(a).as_ref() == Some(member))
            .map(|(_, seq)| *seq as usize)
            .sum()
    }

    /// Drops the changes `policy` no longer accepts from members who left or were removed:
    /// per install of such a member, everything after the later of the head its removal
    /// recorded and the last of its changes a current member's change depends on, plus
    /// anything built on a dropped change. (A device may have accepted such a change
    /// before it heard of the removal; every device must end with the same document.)
    /// Automerge cannot remove a change, so the document is rebuilt from the rest.
    /// Returns how many changes were dropped.
    pub fn prune_departed(&mut self, policy: &dyn WritePolicy) -> Result<usize, Rejection> {
        let departed: Vec<(usize, Limit)> = self
            .index
            .actors
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| Some((slot, policy.limit(&actor_member(a)?)?)))
            .collect();
        if departed.is_empty() {
            return Ok(0);
        }
        let clock_of = |e: &IndexEntry| &self.index.clocks[e.clock_at..e.clock_at + e.clock_len as usize];
        let departed_slots: HashSet<usize> = departed.iter().map(|(s, _)| *s).collect();
        // Per departed install: the last sequence number that stays.
        let mut keep: HashMap<usize, u32> = HashMap::new();
        for (slot, limit) in &departed {
            let suffix = &self.index.actors[*slot].to_bytes()[32..];
            let recorded = limit
                .heads
                .iter()
                .filter(|h| h.suffix[..] == *suffix)
                .map(|h| {
                    let genuine = self
                        .index
                        .changes
                        .iter()
                        .any(|(hash, e)| e.actor as usize == *slot && e.seq == h.seq && *hash == h.hash);
                    // A different change at the recorded number is a fork: keep what precedes.
                    if genuine { h.seq } else { h.seq.saturating_sub(1) }
                })
                .max()
                .unwrap_or(0);
            keep.insert(*slot, recorded);
        }
        for e in self.index.changes.values() {
            if departed_slots.contains(&(e.actor as usize)) {
                continue;
            }
            let clock = clock_of(e);
            for (slot, kept) in keep.iter_mut() {
                *kept = (*kept).max(clock.get(*slot).copied().unwrap_or(0));
            }
        }
        let dropped: HashSet<ChangeHash> = self
            .index
            .changes
            .iter()
            .filter(|(_, e)| {
                let clock = clock_of(e);
                keep.iter()
                    .any(|(slot, kept)| clock.get(*slot).copied().unwrap_or(0) > *kept)
            })
            .map(|(h, _)| *h)
            .collect();
        if dropped.is_empty() {
            return Ok(0);
        }
        let kept: Vec<Change> = self
            .doc
            .get_changes(&[])
            .into_iter()
            .filter(|c| !dropped.contains(&ChangeHash(c.hash().0)))
            .collect();
        let rebuilt = crate::guard::catch(move || {
            let mut doc = Automerge::new();
            doc.apply_changes(kept).map(|()| doc.save())
        });
        let saved = match rebuilt {
            Ok(Ok(saved)) => saved,
            _ => return Err(Rejection::Malformed),
        };
        let signatures: Vec<ChangeSignature> = self
            .signatures
            .values()
            .filter(|s| !dropped.contains(&s.hash))
            .cloned()
            .collect();
        *self = Replica::from_trusted_save(self.group, self.id, &saved, signatures)?;
        Ok(dropped.len())
    }

    /// Makes a local change as `actor` (the author's actor id on this install), signs it,
    /// and returns the single-change payload to seal. `edit` runs inside one transaction.
    ///
    /// Returns `None` if `edit` made no operations.
    pub(crate) fn commit<F, E>(
        &mut self,
        author: &SigningSecret,
        actor: &ActorId,
        key_id: KeyId,
        edit: F,
    ) -> Result<Option<Payload>, E>
    where
        F: FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), E>,
    {
        self.doc.set_actor(actor.clone());
        let mut tx = self.doc.transaction();
        if let Err(e) = edit(&mut tx) {
            tx.rollback();
            return Err(e);
        }
        let (Some(hash), _) = tx.commit() else {
            return Ok(None);
        };
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .expect("a change just committed is in the document");
        let meta = Meta {
            hash: ChangeHash(hash.0),
            actor: 0,
            seq: change.seq(),
            deps: change.deps().iter().map(|d| ChangeHash(d.0)).collect(),
        };
        let mut staged = Staged::with_capacity(1);
        let slots = self
            .index
            .slots_for(std::slice::from_ref(change.actor_id()), &mut staged)
            .expect("this install is one actor");
        let staged = self
            .index
            .stage_all(staged, [&meta], &slots)
            .expect("our own change follows our own history");
        self.index.commit(staged);
        let sig = ChangeSignature::sign(author, &self.group, &self.id, meta.hash, key_id);
        self.signatures.insert(meta.hash, sig.clone());
        Ok(Some(Payload {
            kind: PayloadKind::Change,
            data: change.raw_bytes().to_vec(),
            signatures: vec![sig],
        }))
    }

    /// Validates a decrypted payload and applies its new changes.
    ///
    /// On `Err` or [`Ingest::MissingDeps`] the replica is unchanged. Everything that can be
    /// checked without the dependencies (writers, signatures, actor limits) is checked
    /// before a unit is reported as waiting, so only plausible units occupy the queue.
    pub fn ingest(&mut self, payload: &Payload, policy: &dyn WritePolicy) -> Result<Ingest, Rejection> {
        let parsed = Parsed::from_untrusted(payload.kind, &payload.data)?;
        let metas = parsed.metas()?;
        // Who wrote: every actor must be a member allowed to write this document.
        let mut authors = Vec::with_capacity(metas.actors.len());
        for actor in &metas.actors {
            let author = actor_member(actor).ok_or(Rejection::BadActor)?;
            if !policy.may_write(&author) {
                return Err(Rejection::NotAllowed);
            }
            authors.push(author);
        }
        // Per payload actor of a member who left or was removed: the heads their removal
        // recorded. A recorded head in the unit is vouched for by the removal (signed by
        // whoever made it) as the author's own signature would be: a device that dropped
        // a departed member's late changes may no longer hold their signature over the
        // ones before.
        let departed: Vec<Option<Limit>> = authors.iter().map(|a| policy.limit(a)).collect();
        let vouched: Vec<(ChangeHash, MemberId)> = if departed.iter().all(Option::is_none) {
            Vec::new()
        } else {
            metas
                .list
                .iter()
                .filter(|m| {
                    let suffix = &metas.actors[m.actor as usize].to_bytes()[32..];
                    departed[m.actor as usize].as_ref().is_some_and(|limit| {
                        limit
                            .heads
                            .iter()
                            .any(|h| h.hash == m.hash && h.suffix[..] == *suffix && u64::from(h.seq) == m.seq)
                    })
                })
                .map(|m| (m.hash, authors[m.actor as usize]))
                .collect()
        };
        // Every signature must verify, and every author must have signed something here
        // (or, having departed, be vouched for).
        for s in &payload.signatures {
            if !s.verify(&self.group, &self.id) {
                return Err(Rejection::BadSignature);
            }
        }
        let unsigned = authors
            .iter()
            .any(|a| !payload.signatures.iter().any(|s| s.author == *a) && !vouched.iter().any(|(_, v)| v == a));
        if unsigned {
            return Err(Rejection::Unsigned);
        }
        let all_new = self.index.is_empty() || metas.list.iter().all(|m| !self.index.contains(&m.hash));
        let new: Vec<&Meta> = if all_new {
            metas.list.iter().collect()
        } else {
            metas.list.iter().filter(|m| !self.index.contains(&m.hash)).collect()
        };
        if new.is_empty() {
            return Ok(Ingest::Duplicate);
        }
        let mut fresh = Staged::with_capacity(new.len());
        let slots = self.index.slots_for(&metas.actors, &mut fresh)?;
        // Changes usually arrive in causal order: stage them as they come, and only sort
        // (or report missing dependencies) when that fails for lack of a dependency.
        let staged = match self.index.stage_all(fresh.clone(), new.iter().copied(), &slots) {
            Ok(staged) => staged,
            Err(Rejection::Inconsistent) => {
                let new_hashes: HashSet<ChangeHash> = new.iter().map(|m| m.hash).collect();
                let mut missing: Vec<ChangeHash> = new
                    .iter()
                    .flat_map(|m| m.deps.iter())
                    .filter(|d| !new_hashes.contains(d) && !self.index.contains(d))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    missing.sort();
                    missing.dedup();
                    return Ok(Ingest::MissingDeps(missing));
                }
                let owned: Vec<Meta> = new.iter().map(|m| (*m).clone()).collect();
                let order = topo_order(&owned, &self.index)?;
                self.index.stage_all(fresh, order, &slots)?
            }
            Err(e) => return Err(e),
        };
        let vouched: Vec<ChangeHash> = vouched.into_iter().map(|(h, _)| h).collect();
        let keep = self.check_coverage(&new, &slots, &staged, &payload.signatures, &vouched)?;
        self.check_departed(&new, &metas.actors, &slots, &staged, &departed)?;
        let count = new.len();
        self.apply(parsed, &new, all_new)?;
        self.index.commit(staged);
        for s in keep {
            self.signatures.insert(s.hash, s);
        }
        Ok(Ingest::Applied { changes: count })
    }

    /// Every new change must be reachable from a hash its author signed in this payload.
    /// With per-change vector clocks (and forks already excluded), change `(actor, seq)` is
    /// an ancestor of signed change `S` exactly when `S`'s clock has `actor ≥ seq`.
    /// Returns the signatures worth keeping (signatures were verified by the caller).
    fn check_coverage(
        &self,
        new: &[&Meta],
        slots: &[u32],
        staged: &Staged,
        signatures: &[ChangeSignature],
        vouched: &[ChangeHash],
    ) -> Result<Vec<ChangeSignature>, Rejection> {
        // Highest sequence number covered per actor slot.
        let mut covered = vec![0u32; self.actors_len(staged)];
        let mut keep = Vec::new();
        for hash in vouched {
            let Some(entry) = staged.changes.get(hash) else {
                continue;
            };
            let author = actor_member(self.index.actor_at(staged, entry.actor));
            let clock = self.index.clock(staged, hash).expect("staged above");
            for (slot, &seq) in clock.iter().enumerate() {
                if seq > covered[slot] && actor_member(self.index.actor_at(staged, slot as u32)) == author {
                    covered[slot] = seq;
                }
            }
        }
        for s in signatures {
            let Some(entry) = staged.changes.get(&s.hash) else {
                continue; // not a change of this payload: it covers nothing new
            };
            if actor_member(self.index.actor_at(staged, entry.actor)) != Some(s.author) {
                return Err(Rejection::BadSignature);
            }
            let clock = self.index.clock(staged, &s.hash).expect("staged above");
            for (slot, &seq) in clock.iter().enumerate() {
                if seq > covered[slot] && actor_member(self.index.actor_at(staged, slot as u32)) == Some(s.author) {
                    covered[slot] = seq;
                }
            }
            keep.push(s.clone());
        }
        for m in new {
            let slot = slots[m.actor as usize] as usize;
            if m.seq > u64::from(covered[slot]) {
                return Err(Rejection::Unsigned);
            }
        }
        Ok(keep)
    }

    /// A departed member's new change must be one their removal recorded — a recorded
    /// head, or an earlier change of the same install — or one that a current member's
    /// change in this unit descends from (someone built on it before learning of the
    /// removal).
    ///
    /// An earlier change is taken whether or not the recorded head is here: the head may
    /// never reach this device (a member who leaves takes their last change with them if
    /// nobody synced it). Installs write linear histories, so an earlier change is the
    /// head's ancestor; a different one at the same number would be a fork the sequence
    /// checks refuse once either side of it is here. Judging by number alone makes the
    /// verdict the same whatever arrives first: before or after the departure, and in one
    /// unit or in several.
    fn check_departed(
        &self,
        new: &[&Meta],
        actors: &[ActorId],
        slots: &[u32],
        staged: &Staged,
        departed: &[Option<Limit>],
    ) -> Result<(), Rejection> {
        if departed.iter().all(Option::is_none) {
            return Ok(());
        }
        for m in new {
            let Some(limit) = &departed[m.actor as usize] else {
                continue;
            };
            let suffix = &actors[m.actor as usize].to_bytes()[32..];
            let seq = u32::try_from(m.seq).map_err(|_| Rejection::SequenceGap)?;
            let slot = slots[m.actor as usize];
            let recorded = limit
                .heads
                .iter()
                .any(|h| h.suffix[..] == *suffix && (h.hash == m.hash || seq < h.seq));
            if recorded {
                continue;
            }
            let depended_on = new.iter().any(|c| {
                departed[c.actor as usize].is_none()
                    && self
                        .index
                        .clock(staged, &c.hash)
                        .is_some_and(|clock| clock.get(slot as usize).is_some_and(|s| *s >= seq))
            });
            if !depended_on {
                return Err(limit.refusal.clone());
            }
        }
        Ok(())
    }

    fn actors_len(&self, staged: &Staged) -> usize {
        self.index.actors.len() + staged.new_actors.len()
    }

    /// Applies validated changes. Automerge can still panic on a change whose operations are
    /// nonsense (e.g. naming an object that does not exist), which metadata cannot show; so
    /// the changes go into a copy of the document inside the panic guard, and the copy
    /// replaces the live document only if that succeeds.
    fn apply(&mut self, parsed: Parsed, new: &[&Meta], all_new: bool) -> Result<(), Rejection> {
        let fresh = |changes: Vec<Change>| -> Vec<Change> {
            if all_new {
                return changes;
            }
            let wanted: HashSet<ChangeHash> = new.iter().map(|m| m.hash).collect();
            changes
                .into_iter()
                .filter(|c| wanted.contains(&ChangeHash(c.hash().0)))
                .collect()
        };
        let changes = match parsed {
            Parsed::Document(scratch) if self.index.is_empty() => {
                // Nothing here yet and everything validated (and loaded without a panic):
                // adopt the loaded document.
                self.doc = *scratch;
                return Ok(());
            }
            Parsed::Document(scratch) => {
                crate::guard::catch(|| fresh(scratch.get_changes(&[]))).map_err(|()| Rejection::Malformed)?
            }
            Parsed::Changes(changes) => fresh(changes),
        };
        let mut next = self.doc.clone();
        let applied = crate::guard::catch(move || next.apply_changes(changes).map(|()| next));
        match applied {
            Ok(Ok(doc)) => {
                self.doc = doc;
                Ok(())
            }
            _ => Err(Rejection::Malformed),
        }
    }
}

/// Operations a change made (its deletions included).
fn ops_of(m: &automerge::ChangeMetadata<'_>) -> u64 {
    (m.max_op + 1).saturating_sub(m.start_op)
}

/// The changes of each author that no other change of the same author (in `index`)
/// descends from, computed from the clocks.
fn author_heads(index: &ChangeIndex) -> Vec<ChangeHash> {
    // The latest change of each actor dominates that actor's others; per author, keep the
    // actor heads that no other head of the same author covers.
    let mut latest: HashMap<u32, (u32, ChangeHash)> = HashMap::new();
    for (h, e) in &index.changes {
        let slot = latest.entry(e.actor).or_insert((e.seq, *h));
        if e.seq > slot.0 {
            *slot = (e.seq, *h);
        }
    }
    let mut heads: Vec<ChangeHash> = latest.values().map(|(_, h)| *h).collect();
    heads.sort();
    heads
}

/// Orders `metas` so every change follows its dependencies among them (Kahn's algorithm,
/// ties by hash). Dependencies outside `metas` must already be in `index`.
fn topo_order<'a>(metas: &'a [Meta], index: &ChangeIndex) -> Result<Vec<&'a Meta>, Rejection> {
    let by_hash: HashMap<ChangeHash, &Meta> = metas.iter().map(|m| (m.hash, m)).collect();
    if by_hash.len() != metas.len() {
        return Err(Rejection::Inconsistent);
    }
    let mut waiting: HashMap<ChangeHash, usize> = HashMap::new();
    let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
    for m in metas {
        let mut n = 0;
        for d in &m.deps {
            if by_hash.contains_key(d) {
                n += 1;
                children.entry(*d).or_default().push(m.hash);
            } else if !index.contains(d) {
                return Err(Rejection::Inconsistent);
            }
        }
        waiting.insert(m.hash, n);
    }
    let mut ready: std::collections::BTreeSet<ChangeHash> =
        waiting.iter().filter(|(_, n)| **n == 0).map(|(h, _)| *h).collect();
    let mut out = Vec::with_capacity(metas.len());
    while let Some(h) = ready.pop_first() {
        out.push(by_hash[&h]);
        for c in children.get(&h).into_iter().flatten() {
            let n = waiting.get_mut(c).expect("child is waiting");
            *n -= 1;
            if *n == 0 {
                ready.insert(*c);
            }
        }
    }
    if out.len() != metas.len() {
        return Err(Rejection::Inconsistent);
    }
    Ok(out)
}
