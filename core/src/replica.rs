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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::{ActorId, Automerge, Change, ReadDoc};
use thiserror::Error;

use crate::crypto::SigningSecret;
use crate::ids::{ChangeHash, DocId, GroupId, KeyId, MemberId};
use crate::unit::{ChangeSignature, Payload, PayloadKind};

/// Bytes of an install suffix appended to the membership key in an actor id.
pub const ACTOR_SUFFIX_LEN: usize = 8;

/// Who may write a document, as the group's membership currently decides.
pub trait WritePolicy {
    /// Whether `author` may write the document being validated.
    fn may_write(&self, author: &MemberId) -> bool;
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
/// ancestry, itself included). The clock is what makes fork detection O(actors).
#[derive(Debug, Clone)]
struct IndexEntry {
    actor: u32,
    seq: u32,
    clock: Box<[u32]>,
}

/// The validated change DAG of one document.
#[derive(Debug, Default, Clone)]
pub struct ChangeIndex {
    actors: Vec<ActorId>,
    actor_index: HashMap<ActorId, u32>,
    max_seq: Vec<u32>,
    changes: HashMap<ChangeHash, IndexEntry>,
}

/// The metadata validation needs from one change.
#[derive(Debug, Clone)]
struct Meta {
    hash: ChangeHash,
    actor: ActorId,
    seq: u64,
    deps: Vec<ChangeHash>,
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

    fn actor_slot(&mut self, actor: &ActorId) -> u32 {
        if let Some(i) = self.actor_index.get(actor) {
            return *i;
        }
        let i = self.actors.len() as u32;
        self.actors.push(actor.clone());
        self.actor_index.insert(actor.clone(), i);
        self.max_seq.push(0);
        i
    }

    /// Checks sequence and descent for `m` and records it. Dependencies must be indexed.
    fn check_and_add(&mut self, m: &Meta) -> Result<(), Rejection> {
        let mut staged = Staged::default();
        self.stage(&mut staged, m)?;
        self.commit(staged);
        Ok(())
    }

    /// Checks `m` against the index plus what is already staged, and stages it. The index
    /// itself only learns new actor slots (harmless: a slot with no changes).
    fn stage(&mut self, staged: &mut Staged, m: &Meta) -> Result<(), Rejection> {
        let seq = u32::try_from(m.seq).map_err(|_| Rejection::SequenceGap)?;
        let actor = self.actor_slot(&m.actor);
        let current = staged
            .max_seq
            .get(&actor)
            .copied()
            .unwrap_or(self.max_seq[actor as usize]);
        if seq != current + 1 {
            return Err(Rejection::SequenceGap);
        }
        let mut clock = vec![0u32; self.actors.len()];
        for dep in &m.deps {
            let entry = staged
                .changes
                .get(dep)
                .or_else(|| self.changes.get(dep))
                .ok_or(Rejection::Inconsistent)?;
            for (slot, v) in clock.iter_mut().zip(entry.clock.iter()) {
                *slot = (*slot).max(*v);
            }
        }
        if clock[actor as usize] != seq - 1 {
            return Err(Rejection::Fork);
        }
        clock[actor as usize] = seq;
        staged.max_seq.insert(actor, seq);
        staged.changes.insert(
            m.hash,
            IndexEntry {
                actor,
                seq,
                clock: clock.into_boxed_slice(),
            },
        );
        Ok(())
    }

    fn commit(&mut self, staged: Staged) {
        for (actor, seq) in staged.max_seq {
            self.max_seq[actor as usize] = seq;
        }
        self.changes.extend(staged.changes);
    }
}

/// Index entries checked but not yet committed (a unit is accepted or rejected whole).
#[derive(Debug, Default)]
struct Staged {
    changes: HashMap<ChangeHash, IndexEntry>,
    max_seq: HashMap<u32, u32>,
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

    fn metas(&self) -> Result<Vec<Meta>, Rejection> {
        let result = crate::guard::catch(|| match self {
            Parsed::Changes(changes) => changes
                .iter()
                .map(|c| Meta {
                    hash: ChangeHash(c.hash().0),
                    actor: c.actor_id().clone(),
                    seq: c.seq(),
                    deps: c.deps().iter().map(|d| ChangeHash(d.0)).collect(),
                })
                .collect(),
            Parsed::Document(doc) => doc
                .get_changes_meta(&[])
                .into_iter()
                .map(|c| Meta {
                    hash: ChangeHash(c.hash.0),
                    actor: c.actor.into_owned(),
                    seq: c.seq,
                    deps: c.deps.iter().map(|d| ChangeHash(d.0)).collect(),
                })
                .collect(),
        });
        result.map_err(|_| Rejection::Malformed)
    }
}

/// A live document with its validated index and the author signatures it has received.
#[derive(Debug)]
pub struct Replica {
    group: GroupId,
    id: DocId,
    doc: Automerge,
    index: ChangeIndex,
    signatures: BTreeMap<ChangeHash, ChangeSignature>,
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
        let mut staged = Staged::default();
        for m in topo_order(&metas, &index)? {
            index.stage(&mut staged, m)?;
        }
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
            actor: change.actor_id().clone(),
            seq: change.seq(),
            deps: change.deps().iter().map(|d| ChangeHash(d.0)).collect(),
        };
        self.index
            .check_and_add(&meta)
            .expect("our own change follows our own history");
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
    /// On `Err` or [`Ingest::MissingDeps`] the replica is unchanged.
    pub fn ingest(&mut self, payload: &Payload, policy: &dyn WritePolicy) -> Result<Ingest, Rejection> {
        let parsed = Parsed::from_payload(payload.kind, &payload.data)?;
        let metas = parsed.metas()?;
        let new: Vec<&Meta> = metas.iter().filter(|m| !self.index.contains(&m.hash)).collect();
        if new.is_empty() {
            return Ok(Ingest::Duplicate);
        }
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
        let new_metas: Vec<Meta> = new.iter().map(|m| (*m).clone()).collect();
        let ordered = topo_order(&new_metas, &self.index)?;
        for m in &ordered {
            let author = actor_member(&m.actor).ok_or(Rejection::BadActor)?;
            if !policy.may_write(&author) {
                return Err(Rejection::NotAllowed);
            }
        }
        let signatures = self.check_coverage(&new_metas, &payload.signatures)?;
        // Sequence and descent, staged so a rejection leaves no trace.
        let mut staged = Staged::default();
        for m in &ordered {
            self.index.stage(&mut staged, m)?;
        }
        let count = ordered.len();
        self.apply(parsed, &new_hashes, &ordered)?;
        self.index.commit(staged);
        for s in signatures {
            self.signatures.insert(s.hash, s);
        }
        Ok(Ingest::Applied { changes: count })
    }

    /// Every new change must be reachable from a hash its author signed in this payload.
    /// Returns the valid signatures worth keeping.
    fn check_coverage(&self, new: &[Meta], signatures: &[ChangeSignature]) -> Result<Vec<ChangeSignature>, Rejection> {
        let by_hash: HashMap<ChangeHash, &Meta> = new.iter().map(|m| (m.hash, m)).collect();
        let mut starts: HashMap<MemberId, Vec<ChangeHash>> = HashMap::new();
        let mut keep = Vec::new();
        for s in signatures {
            if !s.verify(&self.group, &self.id) {
                return Err(Rejection::BadSignature);
            }
            let Some(m) = by_hash.get(&s.hash) else { continue };
            if actor_member(&m.actor) != Some(s.author) {
                return Err(Rejection::BadSignature);
            }
            starts.entry(s.author).or_default().push(s.hash);
            keep.push(s.clone());
        }
        let mut covered: HashSet<(MemberId, ChangeHash)> = HashSet::new();
        for (author, roots) in starts {
            let mut queue: VecDeque<ChangeHash> = roots.into();
            let mut seen: HashSet<ChangeHash> = HashSet::new();
            while let Some(h) = queue.pop_front() {
                if !seen.insert(h) {
                    continue;
                }
                if let Some(m) = by_hash.get(&h) {
                    covered.insert((author, h));
                    queue.extend(m.deps.iter().copied());
                }
            }
        }
        for m in new {
            let author = actor_member(&m.actor).ok_or(Rejection::BadActor)?;
            if !covered.contains(&(author, m.hash)) {
                return Err(Rejection::Unsigned);
            }
        }
        Ok(keep)
    }

    fn apply(&mut self, parsed: Parsed, new: &HashSet<ChangeHash>, ordered: &[&Meta]) -> Result<(), Rejection> {
        match parsed {
            Parsed::Document(scratch) if self.index.is_empty() && new.len() == ordered.len() => {
                // Nothing here yet and everything validated: adopt the loaded document.
                self.doc = *scratch;
            }
            Parsed::Document(scratch) => {
                let changes: Vec<Change> = scratch
                    .get_changes(&[])
                    .into_iter()
                    .filter(|c| new.contains(&ChangeHash(c.hash().0)))
                    .collect();
                self.doc.apply_changes(changes).map_err(|_| Rejection::Malformed)?;
            }
            Parsed::Changes(changes) => {
                let changes: Vec<Change> = changes
                    .into_iter()
                    .filter(|c| new.contains(&ChangeHash(c.hash().0)))
                    .collect();
                self.doc.apply_changes(changes).map_err(|_| Rejection::Malformed)?;
            }
        }
        Ok(())
    }
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
