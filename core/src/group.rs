//! One membership of one group on this device: its keys, the membership log, the epoch and
//! audience keys it holds, and the replicas of every document it can read.
//!
//! A [`GroupSession`] is sans-IO. Every edit produces sealed units in its outbox and marks
//! documents dirty; the owner (the [`crate::vault::Vault`], or a test) drains both and makes
//! them durable before reporting success. Units received from others go through
//! [`GroupSession::receive_unit`], which checks the sender, opens the payload and hands it
//! to the replica's validation; a unit whose dependencies have not arrived waits in a
//! bounded queue.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{CryptoRng, Rng};
use thiserror::Error;

use crate::audience::AudienceGrant;
pub(crate) use crate::audiences::Audience;
use crate::crypto::{BoxSecret, SigningSecret, SymmetricKey};
use crate::ids::{DocId, DocKind, GroupId, ItemId, KeyId, MemberId, UnitId};
use crate::membership::{
    EPOCH_SEAL_INFO, KeySeal, MemberKeys, MembershipLog, MembershipState, Op, OpError, OpKind, SignedOp,
};
use crate::model::EditError;
use crate::replica::{ACTOR_SUFFIX_LEN, Ingest, Limit, Rejection, Replica, WritePolicy, actor_for};
use crate::unit::{Payload, SealedUnit, UnitError};

/// Most units that may wait for their dependencies, per group.
pub const MAX_PENDING_UNITS: usize = 4096;
/// Most units one sender may have waiting, so one member cannot fill the queue.
pub const MAX_PENDING_PER_SENDER: usize = 512;
/// Most bytes that may wait for their dependencies, per group.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes one sender may have waiting: an eighth of the group's room, so one member's
/// units (or one huge one) never take the room honest members' out-of-order units need.
/// Units wait only when they arrive before what they build on, which live pushes of
/// single changes do; a larger one is skipped and comes again in the next round.
pub const MAX_PENDING_BYTES_PER_SENDER: usize = MAX_PENDING_BYTES / 8;
/// Most documents one group may hold (members', meetings, audience documents and the
/// group's own): a meeting a week for decades, and every list the protocol sends of them
/// stays far within its format.
pub const MAX_DOCS: usize = 16_384;
/// Most audience grants one group may hold.
pub const MAX_GRANTS: usize = 16_384;
/// Most grants one member may have made in a group.
pub const MAX_GRANTS_PER_OWNER: usize = 2_048;
/// Most bytes of grants one member may have made in a group (a grant to ten members is
/// about 1.5 KiB).
pub const MAX_GRANT_BYTES_PER_OWNER: usize = crate::membership::MAX_GRANT_BYTES / 8;

/// The secrets of one group membership.
#[derive(Debug, Clone)]
pub struct MembershipSecrets {
    /// Signs changes and membership operations.
    pub signing: SigningSecret,
    /// Receives sealed keys.
    pub boxed: BoxSecret,
    /// The iroh endpoint key (used from the sync layer on).
    pub transport: SigningSecret,
    /// This install's actor suffix.
    pub actor_suffix: [u8; ACTOR_SUFFIX_LEN],
}

impl MembershipSecrets {
    /// Draws fresh keys for a new membership.
    pub fn generate<R: CryptoRng>(rng: &mut R) -> MembershipSecrets {
        let mut actor_suffix = [0u8; ACTOR_SUFFIX_LEN];
        rng.fill_bytes(&mut actor_suffix);
        MembershipSecrets {
            signing: SigningSecret::generate(rng),
            boxed: BoxSecret::generate(rng),
            transport: SigningSecret::generate(rng),
            actor_suffix,
        }
    }

    /// The membership id.
    pub fn member(&self) -> MemberId {
        MemberId(self.signing.public())
    }

    /// The public keys an add operation records, signed for `group`.
    pub fn public_keys(&self, group: &GroupId) -> MemberKeys {
        MemberKeys::new(group, &self.signing, self.boxed.public())
    }
}

/// A member's transport key (its iroh endpoint id for the group), bound both ways: the
/// membership key signs the transport key, and the transport key signs the membership key.
/// So nobody can claim another member's endpoint (they cannot sign with its key), and
/// nobody can attach their endpoint to another member (they cannot sign with theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportBinding {
    /// The transport public key.
    pub key: [u8; 32],
    /// The membership key's signature over `"alongside/transport/v1" ‖ group ‖ key`.
    pub signature: [u8; 64],
    /// The transport key's signature over `"alongside/transport-owner/v1" ‖ group ‖ member`.
    pub owner_signature: [u8; 64],
}

const TRANSPORT_CONTEXT: &[u8] = b"alongside/transport/v1";
const TRANSPORT_OWNER_CONTEXT: &[u8] = b"alongside/transport-owner/v1";

impl TransportBinding {
    /// Binds `transport` and `membership` to each other in `group`.
    pub fn new(group: &GroupId, membership: &SigningSecret, transport: &SigningSecret) -> TransportBinding {
        let key = transport.public();
        TransportBinding {
            key,
            signature: membership.sign(&[TRANSPORT_CONTEXT, &group.0, &key].concat()),
            owner_signature: transport.sign(&[TRANSPORT_OWNER_CONTEXT, &group.0, &membership.public()].concat()),
        }
    }

    /// Whether `member` and this transport key really bound each other in `group`.
    pub fn verify(&self, group: &GroupId, member: &MemberId) -> bool {
        crate::crypto::verify(
            &member.0,
            &[TRANSPORT_CONTEXT, &group.0, &self.key].concat(),
            &self.signature,
        )
        .is_ok()
            && crate::crypto::verify(
                &self.key,
                &[TRANSPORT_OWNER_CONTEXT, &group.0, &member.0].concat(),
                &self.owner_signature,
            )
            .is_ok()
    }
}

/// Why something sent to a group was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The unit itself is malformed or its sender signature is bad.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// The unit is for another group.
    #[error("the unit belongs to another group")]
    WrongGroup,
    /// The sender is not (and never was) a member.
    #[error("the unit's sender is not a member of this group")]
    NotAMember,
    /// This device holds no key for the unit (not in the audience, or an unknown epoch).
    #[error("this device has no key for that unit")]
    NoKey,
    /// The payload's changes failed validation.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The queue of units waiting for dependencies is full.
    #[error("too many units are waiting for their dependencies")]
    QueueFull,
    /// The group holds as many documents, or grants, as its budget allows.
    #[error("the group holds as many documents or grants as allowed")]
    OverBudget,
}

/// What became of a received unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Its changes were applied (plus any waiting units it unblocked).
    Applied {
        /// The document they changed.
        doc: DocId,
        /// Changes applied, waiting units included.
        changes: usize,
    },
    /// Nothing new.
    Duplicate,
    /// It waits for dependencies.
    Queued,
}

/// Who presented a transport binding (see [`GroupSession::presented`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// A current member.
    Member,
    /// A member who left or was removed.
    Departed,
    /// Anyone else, or a binding that does not hold.
    Stranger,
}

/// Why an edit could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The input was not acceptable.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The member has no permission for that.
    #[error("{0}")]
    NotAllowed(String),
    /// No item matches the given id prefix.
    #[error("nothing matches '{0}'")]
    NoMatch(String),
    /// More than one item matches the given id prefix.
    #[error("'{0}' matches more than one item; give more of the id")]
    Ambiguous(String),
    /// A membership operation was refused.
    #[error(transparent)]
    Op(#[from] OpError),
    /// This device holds no key for the current epoch.
    #[error("this device does not hold the group's current key")]
    NoEpochKey,
    /// Sealing a key to a member failed.
    #[error("a key could not be sealed to a member")]
    Seal,
}

/// One group membership on this device.
pub struct GroupSession {
    pub(crate) group: GroupId,
    pub(crate) me: MembershipSecrets,
    pub(crate) log: MembershipLog,
    pub(crate) epoch_keys: BTreeMap<KeyId, SymmetricKey>,
    pub(crate) audiences: BTreeMap<DocId, Audience>,
    pub(crate) docs: BTreeMap<DocId, Replica>,
    /// Where each held document belongs (see `generation.rs`).
    pub(crate) places: BTreeMap<DocId, crate::generation::Place>,
    /// The placed member documents of each member.
    pub(crate) owned: BTreeMap<MemberId, BTreeSet<DocId>>,
    pending: BTreeMap<UnitId, SealedUnit>,
    pending_bytes: usize,
    rejected: u64,
    outbox: Vec<SealedUnit>,
    accepted: Vec<SealedUnit>,
    dirty: BTreeSet<DocId>,
    /// This member's own changes dropped because its role no longer let them stand, not
    /// yet seen by the person (see [`GroupSession::undone_changes`]). Kept in the record.
    pub(crate) undone: u32,
    /// The record (keys, `undone`) changed with no document or operation changing.
    record_changed: bool,
    pub(crate) rng: StdRng,
}

impl std::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and content stay out of logs.
        f.debug_struct("GroupSession")
            .field("group", &self.group)
            .field("me", &self.me.member())
            .field("documents", &self.docs.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

struct Policy<'a> {
    state: &'a MembershipState,
    doc: DocId,
    audience: Option<&'a [MemberId]>,
    /// The owner of a member document already placed (else found by derivation).
    owner: Option<MemberId>,
}

impl WritePolicy for Policy<'_> {
    fn may_write(&self, author: &MemberId) -> bool {
        let known = self.state.members.contains_key(author)
            || self.state.departed.contains_key(author)
            || self.state.voided.contains(author);
        known
            && match self.doc.kind {
                // (Judged by `limit`: freely while a facilitator, else only up
                // to what demotions or removals recorded.)
                DocKind::Group => true,
                DocKind::Member => match self.owner {
                    Some(owner) => owner == *author,
                    None => crate::generation::owns(self.state, &self.doc, author),
                },
                DocKind::Meeting => true,
                DocKind::Audience => self.audience.is_some_and(|a| a.contains(author)),
            }
    }

    fn limit(&self, author: &MemberId) -> Option<Limit> {
        let departed = self.has_departed(author);
        let recorded = match self.state.departed.get(author) {
            _ if self.state.voided.contains(author) => &[][..],
            Some(recorded) => recorded.as_slice(),
            // Not a facilitator now: what their demotions recorded (nothing, for someone
            // never validly made one, e.g. by a facilitator removed at that moment).
            None if self.doc.kind == DocKind::Group && !self.state.is_facilitator(author) => {
                self.state.demoted.get(author).map_or(&[][..], Vec::as_slice)
            }
            None => return None,
        };
        Some(Limit {
            heads: recorded
                .iter()
                .filter(|(doc, _)| *doc == self.doc)
                .flat_map(|(_, heads)| heads.iter().copied())
                .collect(),
            refusal: if departed {
                Rejection::AfterRemoval
            } else {
                Rejection::NotAllowed
            },
        })
    }
}

impl Policy<'_> {
    /// Whether `author` left or was removed, or their add turned out void.
    fn has_departed(&self, author: &MemberId) -> bool {
        self.state.voided.contains(author) || self.state.departed.contains_key(author)
    }
}

/// What limits who may write what, beyond membership itself: when it changes, changes
/// accepted before may no longer stand (see `GroupSession::prune_departed`).
#[derive(PartialEq)]
struct Limits {
    departed: BTreeMap<MemberId, crate::membership::RemovalHeads>,
    voided: BTreeSet<MemberId>,
    demoted: BTreeMap<MemberId, crate::membership::RemovalHeads>,
    facilitators: BTreeSet<MemberId>,
}

impl Limits {
    fn of(state: &MembershipState) -> Limits {
        Limits {
            departed: state.departed.clone(),
            voided: state.voided.clone(),
            demoted: state.demoted.clone(),
            facilitators: state
                .members
                .values()
                .filter(|m| m.role == crate::membership::Role::Facilitator)
                .map(|m| m.id)
                .collect(),
        }
    }
}

/// A [`Policy`] under which this member, once departed, keeps its own changes.
struct SparingMe<'a> {
    policy: Policy<'a>,
    me: MemberId,
}

impl WritePolicy for SparingMe<'_> {
    fn may_write(&self, author: &MemberId) -> bool {
        self.policy.may_write(author)
    }

    fn limit(&self, author: &MemberId) -> Option<Limit> {
        if *author == self.me && self.policy.has_departed(author) {
            return None;
        }
        self.policy.limit(author)
    }
}

pub(crate) fn open_seal(me: &MembershipSecrets, group: &GroupId, seal: &KeySeal) -> Option<SymmetricKey> {
    if seal.recipient != me.member() {
        return None;
    }
    let raw = me
        .boxed
        .open(EPOCH_SEAL_INFO, &KeySeal::aad(group, &seal.recipient), &seal.sealed)
        .ok()?;
    Some(SymmetricKey::from_bytes(raw.as_slice().try_into().ok()?))
}

impl GroupSession {
    /// Founds a group: draws its id, keys and first epoch key, and writes the group name
    /// and the creator's display name.
    pub fn create(mut rng: StdRng, name: &str, display_name: &str, now_ms: i64) -> Result<GroupSession, GroupError> {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let group = GroupId(id);
        let me = MembershipSecrets::generate(&mut rng);
        let epoch_key = SymmetricKey::generate(&mut rng);
        let keys = me.public_keys(&group);
        let seal = seal_key(&mut rng, &group, &keys.member, &keys.box_public, &epoch_key)?;
        let create = Op {
            group,
            author: me.member(),
            parents: Vec::new(),
            created_at_ms: now_ms,
            kind: OpKind::Create { creator: keys, seal },
        }
        .sign(&me.signing);
        let epoch = KeyId(create.hash().0);
        let log = MembershipLog::new(create)?;
        let mut session = GroupSession::from_parts(group, me, log, rng);
        session.epoch_keys.insert(epoch, epoch_key);
        session.edit_group_doc(|tx| {
            crate::model::edits::set_group_name(tx, name)?;
            crate::model::edits::set_history(tx, false)
        })?;
        session.set_display_name(display_name)?;
        session.announce_transport()?;
        Ok(session)
    }

    /// Joins from the group's membership operations (create first), which must include an
    /// add of `me`. Used by invitations; tests use it to stand up other members.
    pub fn join(rng: StdRng, me: MembershipSecrets, ops: &[SignedOp]) -> Result<GroupSession, GroupError> {
        let create = ops.first().cloned().ok_or(OpError::MissingParent)?;
        let group = create.op().group;
        let log = MembershipLog::new(create)?;
        let mut session = GroupSession::from_parts(group, me, log, rng);
        session.receive_ops(&ops[1..])?;
        if !session.log.state().members.contains_key(&session.me.member()) {
            return Err(GroupError::NotAllowed("those operations do not add this member".into()));
        }
        Ok(session)
    }

    pub(crate) fn from_parts(group: GroupId, me: MembershipSecrets, log: MembershipLog, rng: StdRng) -> GroupSession {
        let mut session = GroupSession {
            group,
            me,
            log,
            epoch_keys: BTreeMap::new(),
            audiences: BTreeMap::new(),
            docs: BTreeMap::new(),
            places: BTreeMap::new(),
            owned: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            rejected: 0,
            outbox: Vec::new(),
            accepted: Vec::new(),
            dirty: BTreeSet::new(),
            undone: 0,
            record_changed: false,
            rng,
        };
        session.collect_epoch_keys();
        session
    }

    /// The group id.
    pub fn id(&self) -> GroupId {
        self.group
    }

    /// This device's membership id in the group.
    pub fn me(&self) -> MemberId {
        self.me.member()
    }

    /// This membership's secrets.
    pub fn secrets(&self) -> &MembershipSecrets {
        &self.me
    }

    /// The resolved membership.
    pub fn membership(&self) -> &MembershipState {
        self.log.state()
    }

    /// Every membership operation.
    pub fn ops(&self) -> Vec<SignedOp> {
        self.log.ops().cloned().collect()
    }

    /// How many membership operations this device holds (cheap: no copies).
    pub fn op_count(&self) -> usize {
        self.log.len()
    }

    /// Every audience grant known.
    pub fn grants(&self) -> Vec<AudienceGrant> {
        self.audiences.values().flat_map(|a| a.grants()).cloned().collect()
    }

    /// Units rejected so far (bad signatures, forbidden writers, forks, ...).
    pub fn rejected_count(&self) -> u64 {
        self.rejected
    }

    /// Units waiting for dependencies.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The replica of `doc`, if this device has it.
    pub fn replica(&self, doc: &DocId) -> Option<&Replica> {
        self.docs.get(doc)
    }

    /// Every document replica.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.docs.values()
    }

    /// Units made here since the last call (to persist, then send).
    pub fn take_outbox(&mut self) -> Vec<SealedUnit> {
        std::mem::take(&mut self.outbox)
    }

    /// Units received and accepted since the last call (to persist).
    pub fn take_accepted(&mut self) -> Vec<SealedUnit> {
        std::mem::take(&mut self.accepted)
    }

    /// How many of this member's own changes to the group document were dropped since
    /// the person last acknowledged it: changes made while their role seemed to allow
    /// them, which every device then refused (a promotion that turned out void, or a
    /// demotion that had already happened elsewhere). The app says so, once.
    pub fn undone_changes(&self) -> u32 {
        self.undone
    }

    /// The person has seen that their changes were undone (see
    /// [`GroupSession::undone_changes`]).
    pub fn acknowledge_undone(&mut self) {
        if self.undone != 0 {
            self.undone = 0;
            self.record_changed = true;
        }
    }

    /// Whether the group's record changed on its own since the last call (see `Vault`).
    pub(crate) fn take_record_changed(&mut self) -> bool {
        std::mem::take(&mut self.record_changed)
    }

    /// Whether anything made or received since the last persist is still unsaved (units,
    /// changed documents, keys).
    pub(crate) fn has_unsaved(&self) -> bool {
        !self.outbox.is_empty() || !self.accepted.is_empty() || !self.dirty.is_empty() || self.record_changed
    }

    /// Documents changed since the last call (to re-snapshot).
    pub fn take_dirty(&mut self) -> Vec<DocId> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Units waiting for dependencies (to persist the queue).
    pub fn pending_units(&self) -> Vec<SealedUnit> {
        self.pending.values().cloned().collect()
    }

    /// Adds membership operations (in any order; unknown parents wait for each other).
    pub fn receive_ops(&mut self, ops: &[SignedOp]) -> Result<usize, GroupError> {
        self.add_ops(ops, true)
    }

    /// [`GroupSession::receive_ops`] for operations read back from this device's store
    /// (admitted once: the log's budget is not applied again).
    pub(crate) fn restore_ops(&mut self, ops: &[SignedOp]) -> Result<usize, GroupError> {
        self.add_ops(ops, false)
    }

    fn add_ops(&mut self, ops: &[SignedOp], budget: bool) -> Result<usize, GroupError> {
        // Whatever was stored counts, even if a later operation was refused.
        let insert = |log: &mut MembershipLog| {
            if budget {
                log.insert_all(ops)
            } else {
                log.restore_all(ops)
            }
        };
        let (added, waiting) = self.change_log(insert)?;
        if !waiting.is_empty() {
            return Err(OpError::MissingParent.into());
        }
        Ok(added)
    }

    /// Changes the membership log with `f`, then brings the rest of the session along
    /// (whatever `f` returns): opens the epoch keys that became valid, and if someone
    /// departed, drops what their removal no longer lets stand. Every change to the log
    /// goes through here.
    pub(crate) fn change_log<T>(&mut self, f: impl FnOnce(&mut MembershipLog) -> T) -> T {
        let limits_before = Limits::of(self.log.state());
        let generations_before = self.log.state().generations.clone();
        let result = f(&mut self.log);
        self.collect_epoch_keys();
        let regenerated = self.log.state().generations != generations_before;
        self.refresh_places(regenerated);
        if Limits::of(self.log.state()) != limits_before {
            self.prune_departed();
        }
        result
    }

    /// Drops, from every document, changes of departed members that their removal no
    /// longer lets stand (see [`Replica::prune_departed`]) — never this member's own.
    ///
    /// A device that learns it was removed keeps what it wrote: dropping its own changes
    /// would let this install write the same sequence numbers again, and if the removal
    /// turns out void (its author was removed at the same moment), those new changes
    /// would fork the old ones everyone else holds. A removed device syncs with no one, so
    /// what it keeps reaches no one.
    ///
    /// A current member's own changes are dropped like anyone's when its role no longer
    /// lets them stand (new agreements set under a promotion that turned out void): every
    /// current member must end with the same document. This install then writes under a
    /// fresh actor id, so it never reuses the dropped changes' sequence numbers.
    fn prune_departed(&mut self) {
        let me = self.me.member();
        let docs: Vec<DocId> = self.docs.keys().copied().collect();
        for doc in docs {
            let policy = SparingMe {
                policy: Policy {
                    state: self.log.state(),
                    doc,
                    audience: self.audiences.get(&doc).map(|a| a.writers()),
                    owner: self.places.get(&doc).and_then(|p| p.owner),
                },
                me,
            };
            let Some(replica) = self.docs.get_mut(&doc) else {
                continue;
            };
            let mine_limited = policy.limit(&me).is_some();
            let mine_before = if mine_limited { replica.changes_by(&me) } else { 0 };
            match replica.prune_departed(&policy) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(changes = n, "dropped changes their authors may no longer have made");
                    self.dirty.insert(doc);
                    if mine_limited {
                        self.rng.fill_bytes(&mut self.me.actor_suffix);
                        let dropped = mine_before.saturating_sub(replica.changes_by(&me));
                        self.undone = self.undone.saturating_add(u32::try_from(dropped).unwrap_or(u32::MAX));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not drop a departed member's late changes"),
            }
        }
    }

    pub(crate) fn current_epoch_key(&self) -> Result<(KeyId, &SymmetricKey), GroupError> {
        let epoch = self.log.state().epoch.ok_or(GroupError::NoEpochKey)?;
        let key = self.epoch_keys.get(&epoch).ok_or(GroupError::NoEpochKey)?;
        Ok((epoch, key))
    }

    /// The key (and its id) that units of `doc` are sealed under.
    fn doc_key(&self, doc: &DocId) -> Result<(KeyId, SymmetricKey), GroupError> {
        if doc.kind == DocKind::Audience {
            let a = self.audiences.get(doc).ok_or(GroupError::NoEpochKey)?;
            let key = a.key.clone().ok_or(GroupError::NoEpochKey)?;
            return Ok((a.grant.key_id(), key));
        }
        let (id, key) = self.current_epoch_key()?;
        Ok((id, key.clone()))
    }

    /// Makes one local change to `doc` with `edit`, signs and seals it into the outbox.
    pub(crate) fn edit_doc<F>(&mut self, doc: DocId, edit: F) -> Result<(), GroupError>
    where
        F: FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), EditError>,
    {
        if !self.log.state().is_member(&self.me()) {
            return Err(GroupError::NotAllowed(
                "You are no longer a member of this group.".into(),
            ));
        }
        if !self.docs.contains_key(&doc) && self.docs.len() >= MAX_DOCS {
            return Err(GroupError::NotAllowed(
                "This group holds as many meetings and shared items as it can.".into(),
            ));
        }
        self.rotate_before_writing()?;
        self.renew_audience_before_writing(&doc)?;
        let (key_id, key) = self.doc_key(&doc)?;
        let actor = actor_for(&self.me(), &self.me.actor_suffix);
        let group = self.group;
        let replica = self.docs.entry(doc).or_insert_with(|| Replica::new(group, doc));
        let Some(payload) = replica.commit(&self.me.signing, &actor, key_id, edit)? else {
            return Ok(());
        };
        let unit = SealedUnit::seal(&mut self.rng, self.group, doc, key_id, &key, &self.me.signing, &payload);
        self.outbox.push(unit);
        self.dirty.insert(doc);
        self.place_doc(doc);
        Ok(())
    }

    pub(crate) fn edit_group_doc<F>(&mut self, edit: F) -> Result<(), GroupError>
    where
        F: FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), EditError>,
    {
        if !self.log.state().is_facilitator(&self.me()) {
            return Err(GroupError::NotAllowed(
                "Only facilitators can change the group's name, agreements or settings.".into(),
            ));
        }
        self.edit_doc(DocId::group_doc(&self.group), edit)
    }

    pub(crate) fn edit_my_doc<F>(&mut self, edit: F) -> Result<(), GroupError>
    where
        F: FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), EditError>,
    {
        self.edit_doc(self.my_doc(), edit)
    }

    /// The transport (endpoint) secret for the current epoch: this install's base
    /// transport key in the group's first epoch, and in every later one a key derived from
    /// it and the epoch id. So endpoint ids change with every epoch, and nobody without the
    /// base key can link one epoch's id to the next.
    pub fn transport_secret(&self) -> SigningSecret {
        match self.log.state().epoch {
            Some(epoch) if epoch.0 != self.log.genesis().0 => {
                let mut h = blake3::Hasher::new_derive_key("alongside/transport-key/v1");
                h.update(&*self.me.transport.seed());
                h.update(&epoch.0);
                SigningSecret::from_seed(h.finalize().as_bytes())
            }
            _ => self.me.transport.clone(),
        }
    }

    /// This member's transport binding (its endpoint key for the group in the current
    /// epoch, signed).
    pub fn transport_binding(&self) -> TransportBinding {
        TransportBinding::new(&self.group, &self.me.signing, &self.transport_secret())
    }

    /// Who a connection whose authenticated endpoint id is `endpoint` is, presenting
    /// `binding` as `member`: a current member (it may sync); one who left or was removed
    /// (heard out, [`crate::sync::PeerSync::start_parting`], then refused, whichever key
    /// it dials from); or a stranger (a binding that is not genuine or names another
    /// endpoint, or someone never in the group: refused).
    pub fn presented(&self, member: &MemberId, binding: &TransportBinding, endpoint: &[u8; 32]) -> Presented {
        let state = self.log.state();
        if binding.key != *endpoint || !binding.verify(&self.group, member) {
            return Presented::Stranger;
        }
        if state.is_member(member) {
            Presented::Member
        } else if state.departed.contains_key(member) {
            Presented::Departed
        } else {
            Presented::Stranger
        }
    }

    /// Announces this member's transport key in its member document (encrypted under the
    /// epoch key like everything else), if it is not announced already.
    pub fn announce_transport(&mut self) -> Result<(), GroupError> {
        let binding = self.transport_binding();
        let current = self.docs.get(&self.my_doc()).and_then(crate::model::views::transport);
        if current == Some(binding) {
            return Ok(());
        }
        self.edit_my_doc(|tx| crate::model::edits::set_transport(tx, &binding))
    }

    /// The current member whose announced, verified transport key is `endpoint`.
    pub fn member_for_endpoint(&self, endpoint: &[u8; 32]) -> Option<MemberId> {
        self.log.state().members.keys().copied().find(|m| {
            self.newest_member_value(m, crate::model::views::transport)
                .is_some_and(|b| b.key == *endpoint && b.verify(&self.group, m))
        })
    }

    /// Sets this member's display name in the group.
    pub fn set_display_name(&mut self, name: &str) -> Result<(), GroupError> {
        self.edit_my_doc(|tx| crate::model::edits::set_display_name(tx, name))
    }

    /// Creates an audience document shared with `members` (plus this member) and returns it.
    pub(crate) fn new_audience(&mut self, members: &[MemberId], now_ms: i64) -> Result<DocId, GroupError> {
        let state = self.log.state();
        let mut with_keys = Vec::new();
        for m in members {
            let info = state.members.get(m).ok_or_else(|| GroupError::NoMatch(m.to_hex()))?;
            with_keys.push((*m, info.box_public));
        }
        let key = SymmetricKey::generate(&mut self.rng);
        let grant = AudienceGrant::create(
            &mut self.rng,
            self.group,
            &self.me.signing,
            self.me.boxed.public(),
            &with_keys,
            &key,
            now_ms,
        )
        .map_err(|_| GroupError::Seal)?;
        if self.check_grant_budget(&grant).is_err() {
            return Err(GroupError::NotAllowed(
                "You have shared as many items with chosen members in this group as it can hold.".into(),
            ));
        }
        let doc = grant.doc;
        self.audiences.insert(doc, Audience::new(grant, Some(key)));
        Ok(doc)
    }

    /// Validates and applies a unit received from anyone.
    pub fn receive_unit(&mut self, bytes: &[u8]) -> Result<Received, ReceiveError> {
        let result = self.receive_unit_inner(bytes);
        if matches!(
            result,
            Err(ReceiveError::Rejected(_)) | Err(ReceiveError::Unit(_)) | Err(ReceiveError::NotAMember)
        ) {
            self.rejected += 1;
            tracing::debug!(group = %crate::ids::short_hex(&self.group.0), error = %result.as_ref().unwrap_err(), "unit rejected");
        }
        result
    }

    fn receive_unit_inner(&mut self, bytes: &[u8]) -> Result<Received, ReceiveError> {
        let unit = SealedUnit::decode(bytes)?;
        let h = *unit.header();
        if h.group != self.group {
            return Err(ReceiveError::WrongGroup);
        }
        let state = self.log.state();
        if !state.members.contains_key(&h.sender) && !state.departed.contains_key(&h.sender) {
            return Err(ReceiveError::NotAMember);
        }
        match self.apply_unit(&unit)? {
            Ingest::Duplicate => Ok(Received::Duplicate),
            Ingest::MissingDeps(_) => {
                if self.pending.contains_key(&unit.id()) {
                    return Ok(Received::Queued);
                }
                let (from_sender, sender_bytes) = self
                    .pending
                    .values()
                    .filter(|w| w.header().sender == h.sender)
                    .fold((0, 0), |(n, b), w| (n + 1, b + w.bytes().len()));
                if self.pending.len() >= MAX_PENDING_UNITS
                    || from_sender >= MAX_PENDING_PER_SENDER
                    || sender_bytes + bytes.len() > MAX_PENDING_BYTES_PER_SENDER
                    || self.pending_bytes + bytes.len() > MAX_PENDING_BYTES
                {
                    return Err(ReceiveError::QueueFull);
                }
                self.pending_bytes += bytes.len();
                self.pending.insert(unit.id(), unit);
                Ok(Received::Queued)
            }
            Ingest::Applied { changes } => {
                self.accepted.push(unit);
                Ok(Received::Applied {
                    doc: h.doc,
                    changes: changes + self.drain_pending(h.doc),
                })
            }
        }
    }

    fn apply_unit(&mut self, unit: &SealedUnit) -> Result<Ingest, ReceiveError> {
        let h = unit.header();
        let key = if h.doc.kind == DocKind::Audience {
            let a = self.audiences.get(&h.doc).ok_or(ReceiveError::NoKey)?;
            a.key_for(&h.key_id).cloned().ok_or(ReceiveError::NoKey)?
        } else {
            self.epoch_keys.get(&h.key_id).cloned().ok_or(ReceiveError::NoKey)?
        };
        let payload: Payload = unit.open(&key)?;
        let policy = Policy {
            state: self.log.state(),
            doc: h.doc,
            audience: self.audiences.get(&h.doc).map(|a| a.writers()),
            owner: self.places.get(&h.doc).and_then(|p| p.owner),
        };
        if !self.docs.contains_key(&h.doc) && self.docs.len() >= MAX_DOCS {
            return Err(ReceiveError::OverBudget);
        }
        let group = self.group;
        let replica = self.docs.entry(h.doc).or_insert_with(|| Replica::new(group, h.doc));
        let result = replica.ingest(&payload, &policy);
        if replica.index().is_empty() {
            self.docs.remove(&h.doc);
        }
        let outcome = result?;
        self.place_doc(h.doc);
        if matches!(outcome, Ingest::Applied { .. }) {
            self.dirty.insert(h.doc);
        }
        Ok(outcome)
    }

    /// Retries waiting units of `doc` until none makes progress; returns changes applied.
    fn drain_pending(&mut self, doc: DocId) -> usize {
        let mut applied = 0;
        loop {
            let ready: Vec<UnitId> = self
                .pending
                .iter()
                .filter(|(_, w)| w.header().doc == doc)
                .map(|(id, _)| *id)
                .collect();
            let mut progress = false;
            for id in ready {
                let Some(w) = self.pending.get(&id).cloned() else {
                    continue;
                };
                match self.apply_unit(&w) {
                    Ok(Ingest::MissingDeps(_)) => continue,
                    Ok(Ingest::Applied { changes }) => {
                        applied += changes;
                        progress = true;
                        self.accepted.push(w.clone());
                    }
                    Ok(Ingest::Duplicate) => {}
                    Err(_) => self.rejected += 1,
                }
                self.pending_bytes -= w.bytes().len();
                self.pending.remove(&id);
            }
            if !progress {
                return applied;
            }
        }
    }

    /// Restores a waiting unit from the store (no validation happens until it is retried).
    pub(crate) fn restore_pending(&mut self, unit: SealedUnit) {
        self.pending_bytes += unit.bytes().len();
        self.pending.insert(unit.id(), unit);
    }

    /// The current epoch id and key. For code that seals units on this member's behalf
    /// (the sync engine, tests of hostile members); never log or persist it elsewhere.
    pub fn epoch_key(&self) -> Option<(KeyId, SymmetricKey)> {
        self.current_epoch_key().ok().map(|(id, k)| (id, k.clone()))
    }

    /// The two local-network (mDNS) service names of this group at `now_ms` (see
    /// [`crate::meeting::service_names`]): derived from the current epoch key, so only
    /// members holding that key can tell which group a record on the network belongs to;
    /// each name lasts half an hour, the pair moves every quarter hour, and both change
    /// with every epoch (a removed member learns nothing from the new ones). `None`
    /// without an epoch key.
    pub fn lan_service_names(&self, now_ms: i64) -> Option<[String; 2]> {
        let (_, key) = self.current_epoch_key().ok()?;
        Some(crate::meeting::service_names(key.expose(), &self.group, now_ms))
    }

    /// A unit carrying the whole of `doc` as a saved document (for a peer with nothing).
    pub fn document_unit(&mut self, doc: &DocId) -> Option<SealedUnit> {
        let payload = self.docs.get(doc)?.document_payload();
        self.seal_payload(doc, &payload)
    }

    /// A unit carrying the changes of `doc` a peer holding `have` lacks, as a bundle.
    pub fn catch_up_unit(&mut self, doc: &DocId, have: &[crate::ids::ChangeHash]) -> Option<SealedUnit> {
        let payload = self.docs.get(doc)?.bundle_payload(have);
        self.seal_payload(doc, &payload)
    }

    /// The units that bring a peer holding `have` of `doc` up to date, in order, each of
    /// about `max_ops` operations at most where signatures allow the cut (see
    /// [`Replica::catch_up_payloads`]).
    pub fn catch_up_units(&mut self, doc: &DocId, have: &[crate::ids::ChangeHash], max_ops: u64) -> Vec<SealedUnit> {
        let Some(replica) = self.docs.get(doc) else {
            return Vec::new();
        };
        let payloads = replica.catch_up_payloads(have, max_ops);
        payloads.iter().filter_map(|p| self.seal_payload(doc, p)).collect()
    }

    fn seal_payload(&mut self, doc: &DocId, payload: &Payload) -> Option<SealedUnit> {
        // Never re-seal content under a key someone who departed holds.
        if self.rotate_before_writing().is_err() || self.renew_audience_before_writing(doc).is_err() {
            return None;
        }
        let (key_id, key) = self.doc_key(doc).ok()?;
        Some(SealedUnit::seal(
            &mut self.rng,
            self.group,
            *doc,
            key_id,
            &key,
            &self.me.signing,
            payload,
        ))
    }

    /// Draws a fresh item id.
    pub(crate) fn new_item_id(&mut self) -> ItemId {
        ItemId::generate(&mut self.rng)
    }
}

pub(crate) fn seal_key<R: CryptoRng>(
    rng: &mut R,
    group: &GroupId,
    recipient: &MemberId,
    box_public: &[u8; 32],
    key: &SymmetricKey,
) -> Result<KeySeal, GroupError> {
    let sealed = crate::crypto::seal_to(
        rng,
        box_public,
        EPOCH_SEAL_INFO,
        &KeySeal::aad(group, recipient),
        key.expose(),
    )
    .map_err(|_| GroupError::Seal)?;
    Ok(KeySeal {
        recipient: *recipient,
        sealed,
    })
}
