//! The per-connection sync state machine (sans-IO).
//!
//! A [`PeerSync`] is driven with frames received from one peer of one group and returns
//! the frames to send back. It never touches a socket, a clock or a thread. The drain
//! rule: after every call that takes a [`GroupSession`], the driver drains the session's
//! outbox, accepted units and dirty documents (e.g. `Vault::edit` persists them) before
//! anything else, so what the engine applied is durable before it is acknowledged further.

use std::collections::{BTreeMap, BTreeSet};

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use thiserror::Error;

use crate::audience::AudienceGrant;
use crate::group::{GroupSession, ReceiveError, Received};
use crate::ids::{ChangeHash, DocId, MemberId, OpHash};
use crate::membership::SignedOp;
use crate::replica::Rejection;
use crate::sync::message::{DigestEntry, Message};
use crate::unit::SealedUnit;
use crate::wire::DecodeError;

/// Most Automerge operations per unit in a transfer (about 0.5 MB compressed for text
/// typed one keystroke at a time; the whole automerge-paper document has 260,000):
/// larger transfers are cut at covered points, so an interrupted one keeps every piece
/// that arrived.
pub const DEFAULT_CHUNK_OPS: u64 = 1_000_000;

/// Largest negentropy message this side produces.
const NEG_FRAME_LIMIT: u64 = 64 * 1024;

/// Why a connection must be closed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// A message arrived when it was not expected.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// The peer talks about another group.
    #[error("the peer is syncing another group")]
    WrongGroup,
    /// The peer sent a membership operation or grant that was refused.
    #[error("the peer sent a membership operation or grant that was refused")]
    BadMembership,
    /// The peer sent a unit that failed validation.
    #[error("the peer sent an invalid unit: {0}")]
    BadUnit(ReceiveError),
    /// Set reconciliation failed (a malformed negentropy message).
    #[error("set reconciliation failed")]
    Reconcile,
}

/// Something the driver may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A unit from the peer was applied.
    Applied {
        /// The document it changed.
        doc: DocId,
        /// Changes applied (including waiting ones it unblocked).
        changes: usize,
    },
    /// Membership operations from the peer were new here (someone joined, left, was
    /// removed, changed role, or the key rotated).
    Membership {
        /// How many operations were new.
        ops: usize,
    },
    /// Both sides have sent each other everything the other lacked.
    CaughtUp,
}

/// Counters for a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Frames sent and their bytes.
    pub frames_sent: u64,
    /// Bytes of frames sent.
    pub bytes_sent: u64,
    /// Bytes of frames received.
    pub bytes_received: u64,
    /// Negentropy rounds this side took part in.
    pub reconcile_rounds: u64,
    /// Units skipped without ending the conversation: no key for them here, an author
    /// not known here yet, a full queue, or changes refused for who wrote them (judged by
    /// the membership, which the peer may have seen differently when it took them).
    pub units_skipped: u64,
}

/// One peer's sync session for one group: a first round of reconciliation, then live mode
/// (pushed units and membership operations) with further rounds started by the dialer.
pub struct PeerSync {
    peer: MemberId,
    initiator: bool,
    /// The first membership exchange is done: units and pushed operations may flow.
    live: bool,
    /// The peer left or was removed here: this side only hears its membership operations
    /// (which may remove someone concurrently) and tells it the ones it lacks, then parts.
    parting: bool,
    /// (Parting) the peer's operations have been heard: the conversation is over.
    parted: bool,
    /// Membership operations the peer is known to hold (told, sent or received), only
    /// ever ones this side holds too: a subset of the session's log.
    peer_ops: BTreeSet<OpHash>,
    /// Audience grants already sent to the peer (by the hash of their bytes).
    sent_grants: BTreeSet<[u8; 32]>,
    round: Round,
    rounds_completed: u64,
    /// Most operations per unit when a transfer is cut into covered pieces.
    chunk_ops: u64,
    stats: SyncStats,
}

/// The state of one reconciliation round.
#[derive(Default)]
struct Round {
    got_hello: bool,
    got_membership: bool,
    /// Set reconciliation over `(document, heads)` pairs, and the pairs this side offered.
    doc_set: Option<DocSetState>,
    pairs: BTreeMap<[u8; 32], DigestEntry>,
    /// Whether this side has finished deciding which documents to settle.
    docs_planned: bool,
    /// (Dialer) the documents offered in the diff, awaiting the acceptor's plan.
    offered: Vec<DigestEntry>,
    negs: BTreeMap<DocId, (Negentropy<'static, NegentropyStorageVector>, Vec<Id>)>,
    /// Documents this side still has to settle before it can say it caught up.
    unsettled: BTreeSet<DocId>,
    sent_caught_up: bool,
    got_caught_up: bool,
    reported_caught_up: bool,
}

impl Round {
    fn is_complete(&self) -> bool {
        self.sent_caught_up && self.got_caught_up
    }
}

impl std::fmt::Debug for PeerSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSync")
            .field("peer", &self.peer)
            .field("initiator", &self.initiator)
            .field("live", &self.live)
            .field("rounds_completed", &self.rounds_completed)
            .field("unsettled", &self.round.unsettled.len())
            .finish()
    }
}

/// What one step produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Frames to send, in order.
    pub frames: Vec<Vec<u8>>,
    /// Events for the driver.
    pub events: Vec<Event>,
}

impl Step {
    fn send(&mut self, stats: &mut SyncStats, msg: Message) {
        let frame = msg.to_frame();
        stats.frames_sent += 1;
        stats.bytes_sent += frame.len() as u64;
        self.frames.push(frame);
    }
}

impl PeerSync {
    /// Starts a session with `peer` (already authenticated as that member by the
    /// transport). The dialer is the `initiator` of set reconciliation.
    pub fn start(session: &GroupSession, peer: MemberId, initiator: bool) -> (PeerSync, Step) {
        let mut sync = PeerSync {
            peer,
            initiator,
            live: false,
            parting: false,
            parted: false,
            peer_ops: BTreeSet::new(),
            sent_grants: BTreeSet::new(),
            round: Round::default(),
            rounds_completed: 0,
            chunk_ops: DEFAULT_CHUNK_OPS,
            stats: SyncStats::default(),
        };
        let mut step = Step::default();
        step.send(
            &mut sync.stats,
            Message::Hello {
                group: session.id(),
                ops: session.op_hashes(),
            },
        );
        (sync, step)
    }

    /// Starts the last conversation with `peer`, who left or was removed as far as this
    /// device knows, while they still count themselves a member and dialed us.
    ///
    /// Their membership operations are heard before they are refused: they are signed,
    /// and resolution alone decides whether they count. Without this, a facilitator who
    /// removed a facilitator that was removing them at the same moment would be refused by
    /// everyone who heard the other removal first, and their own removal would never
    /// arrive anywhere (strong removal says both take effect). They are told only the
    /// operations they lack (which say they are gone) — no grant, no content. The
    /// conversation is over once [`PeerSync::is_parted`].
    pub fn start_parting(session: &GroupSession, peer: MemberId) -> (PeerSync, Step) {
        let (mut sync, step) = PeerSync::start(session, peer, false);
        sync.parting = true;
        (sync, step)
    }

    /// (Parting) whether the departed peer's operations have been heard: nothing more is
    /// read from or sent to them.
    pub fn is_parted(&self) -> bool {
        self.parted
    }

    /// The peer.
    pub fn peer(&self) -> MemberId {
        self.peer
    }

    /// Whether both sides have sent each other everything the other lacked in the current
    /// round (the first round, until the dialer starts another).
    pub fn is_caught_up(&self) -> bool {
        self.round.is_complete()
    }

    /// Sets the most operations per unit in a transfer (default [`DEFAULT_CHUNK_OPS`]).
    pub fn set_chunk_ops(&mut self, ops: u64) {
        self.chunk_ops = ops.max(1);
    }

    /// Whether the first membership exchange is done, so pushes flow.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Reconciliation rounds both sides have completed on this connection.
    pub fn rounds_completed(&self) -> u64 {
        self.rounds_completed
    }

    /// (Dialer) starts another reconciliation round, the anti-entropy pass that repairs
    /// anything a push lost. `None` if this side is not the dialer or a round is still
    /// under way (the caller simply tries again at its next tick).
    pub fn begin_round(&mut self, session: &GroupSession) -> Option<Step> {
        if !self.initiator || !self.round.is_complete() {
            return None;
        }
        self.round = Round::default();
        let mut step = Step::default();
        step.send(
            &mut self.stats,
            Message::Hello {
                group: session.id(),
                ops: session.op_hashes(),
            },
        );
        Some(step)
    }

    /// Pushes membership operations and audience grants the peer is not known to hold
    /// (after a local membership change, or one learned from another peer).
    pub fn push_membership(&mut self, session: &GroupSession) -> Step {
        let mut step = Step::default();
        if !self.live {
            return step;
        }
        // `peer_ops` holds only operations this side holds, so equal counts mean the peer
        // has them all: no copy of the log on the path of every unit sent.
        let ops: Vec<SignedOp> = if session.op_count() == self.peer_ops.len() {
            Vec::new()
        } else {
            session
                .ops()
                .into_iter()
                .filter(|o| !self.peer_ops.contains(&o.hash()))
                .collect()
        };
        let grants: Vec<AudienceGrant> = session
            .grants_for(&self.peer)
            .into_iter()
            .filter(|g| !self.sent_grants.contains(blake3::hash(g.bytes()).as_bytes()))
            .collect();
        if ops.is_empty() && grants.is_empty() {
            return step;
        }
        let msg = Message::Ops {
            ops: self.note_ops_sent(&ops),
            grants: self.note_grants_sent(&grants),
        };
        step.send(&mut self.stats, msg);
        step
    }

    fn note_ops_sent(&mut self, ops: &[SignedOp]) -> Vec<Vec<u8>> {
        self.peer_ops.extend(ops.iter().map(|o| o.hash()));
        ops.iter().map(|o| o.bytes().to_vec()).collect()
    }

    fn note_grants_sent(&mut self, grants: &[AudienceGrant]) -> Vec<Vec<u8>> {
        self.sent_grants
            .extend(grants.iter().map(|g| *blake3::hash(g.bytes()).as_bytes()));
        grants.iter().map(|g| g.bytes().to_vec()).collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// A unit made or accepted here while connected: sent at once if the peer may read it.
    pub fn push(&mut self, session: &GroupSession, unit: &SealedUnit) -> Step {
        let mut step = Step::default();
        if self.live && session.may_read(&self.peer, &unit.header().doc) {
            step.send(
                &mut self.stats,
                Message::Unit {
                    bytes: unit.bytes().to_vec(),
                },
            );
        }
        step
    }

    /// Handles one frame body from the peer.
    pub fn handle_frame(&mut self, session: &mut GroupSession, body: &[u8]) -> Result<Step, ProtocolError> {
        self.stats.bytes_received += body.len() as u64 + 4;
        let msg = Message::decode(body)?;
        let mut step = Step::default();
        if self.parting {
            self.hear_departed(session, &mut step, msg)?;
            return Ok(step);
        }
        match msg {
            Message::Hello { group, ops } => self.on_hello(session, &mut step, group, &ops)?,
            Message::Membership { ops, grants } => self.on_membership(session, &mut step, &ops, &grants)?,
            Message::Ops { ops, grants } => {
                if !self.live {
                    return Err(ProtocolError::Unexpected("pushed operations before membership"));
                }
                self.receive_membership(session, &mut step, &ops, &grants)?;
            }
            Message::DocSet { msg } => self.on_doc_set(session, &mut step, &msg)?,
            Message::DocDiff { mine, theirs } => self.on_doc_diff(session, &mut step, &mine, &theirs)?,
            Message::DocPlan { lacking } => self.on_doc_plan(session, &mut step, &lacking)?,
            Message::Reconcile { doc, msg } => self.on_reconcile(session, &mut step, doc, &msg)?,
            Message::Need { doc, heads } => self.on_need(session, &mut step, doc, &heads)?,
            Message::Unit { bytes } => self.on_unit(session, &mut step, &bytes)?,
            Message::JoinRequest { .. } | Message::JoinAccepted { .. } | Message::Present { .. } => {
                return Err(ProtocolError::Unexpected("a join message inside a sync"));
            }
            Message::CaughtUp => {
                if self.round.got_caught_up || !self.round.got_membership {
                    return Err(ProtocolError::Unexpected("caught-up out of order"));
                }
                self.round.got_caught_up = true;
            }
        }
        self.maybe_caught_up(&mut step);
        Ok(step)
    }

    /// A departed peer's frame: its Hello is answered with the operations it lacks, its
    /// Membership heard; anything else it sends (it does not know yet) is ignored.
    fn hear_departed(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        msg: Message,
    ) -> Result<(), ProtocolError> {
        if self.parted {
            return Ok(());
        }
        match msg {
            // (Answered as any hello, but with no grant; a second one is out of order.)
            Message::Hello { group, ops } => self.on_hello(session, step, group, &ops)?,
            Message::Membership { ops, .. } => {
                // Their grants could only seal keys to audiences; they are not heard.
                self.receive_membership(session, step, &ops, &[])?;
                self.parted = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_hello(
        &mut self,
        session: &GroupSession,
        step: &mut Step,
        group: crate::ids::GroupId,
        ops: &[crate::ids::OpHash],
    ) -> Result<(), ProtocolError> {
        if self.round.got_hello {
            // The dialer opens a new round only after the last one completed.
            if self.initiator || !self.round.is_complete() {
                return Err(ProtocolError::Unexpected("a hello during a round"));
            }
            // The dialer opened a new round: it goes like the first, so say hello back.
            self.round = Round::default();
            step.send(
                &mut self.stats,
                Message::Hello {
                    group: session.id(),
                    ops: session.op_hashes(),
                },
            );
        }
        if group != session.id() {
            return Err(ProtocolError::WrongGroup);
        }
        self.round.got_hello = true;
        // Remember only what we hold ourselves: a peer cannot grow this set with made-up hashes.
        self.peer_ops
            .extend(ops.iter().filter(|h| session.membership_op(h).is_some()).copied());
        let lacking = session.ops_lacking(ops);
        let grants = if self.parting {
            Vec::new()
        } else {
            session.grants_for(&self.peer)
        };
        let msg = Message::Membership {
            ops: self.note_ops_sent(&lacking),
            grants: self.note_grants_sent(&grants),
        };
        step.send(&mut self.stats, msg);
        Ok(())
    }

    fn on_membership(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        ops: &[Vec<u8>],
        grants: &[Vec<u8>],
    ) -> Result<(), ProtocolError> {
        if !self.round.got_hello || self.round.got_membership {
            return Err(ProtocolError::Unexpected("membership out of order"));
        }
        self.round.got_membership = true;
        self.live = true;
        self.receive_membership(session, step, ops, grants)?;
        // Operations made here after we answered their hello were not pushed (we were not
        // live yet): send them now.
        let late = self.push_membership(session);
        step.frames.extend(late.frames);
        if self.initiator {
            let mut neg = self.pair_negentropy(session)?;
            let first = neg.initiate().map_err(|_| ProtocolError::Reconcile)?;
            self.round.doc_set = Some(DocSetState::Dialer(neg, Vec::new(), Vec::new()));
            self.stats.reconcile_rounds += 1;
            step.send(&mut self.stats, Message::DocSet { msg: first });
        }
        Ok(())
    }

    /// Applies membership operations and grants from the peer; any refusal is a protocol
    /// error (an honest peer only forwards what it accepted).
    fn receive_membership(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        ops: &[Vec<u8>],
        grants: &[Vec<u8>],
    ) -> Result<(), ProtocolError> {
        let ops: Vec<SignedOp> = ops
            .iter()
            .map(|b| SignedOp::decode(b))
            .collect::<Result<_, _>>()
            .map_err(|_| ProtocolError::BadMembership)?;
        let added = session.receive_ops(&ops).map_err(|_| ProtocolError::BadMembership)?;
        if added > 0 {
            step.events.push(Event::Membership { ops: added });
        }
        self.peer_ops.extend(ops.iter().map(|o| o.hash()));
        for g in grants {
            let grant = AudienceGrant::decode(g).map_err(|_| ProtocolError::BadMembership)?;
            match session.receive_grant(grant) {
                // Over the group's or its owner's budget: left out, not a protocol error
                // (which grants fit may depend on the order they arrived in).
                Ok(()) | Err(crate::group::ReceiveError::OverBudget) => {}
                Err(_) => return Err(ProtocolError::BadMembership),
            }
        }
        Ok(())
    }

    /// A negentropy instance over the `(document, heads)` pairs `peer` may read.
    fn pair_negentropy(
        &mut self,
        session: &GroupSession,
    ) -> Result<Negentropy<'static, NegentropyStorageVector>, ProtocolError> {
        self.round.pairs = session
            .digest_for(&self.peer)
            .into_iter()
            .map(|e| (pair_id(&e), e))
            .collect();
        let mut storage = NegentropyStorageVector::with_capacity(self.round.pairs.len());
        for id in self.round.pairs.keys() {
            storage
                .insert(0, Id::from_byte_array(*id))
                .map_err(|_| ProtocolError::Reconcile)?;
        }
        storage.seal().map_err(|_| ProtocolError::Reconcile)?;
        Negentropy::owned(storage, NEG_FRAME_LIMIT).map_err(|_| ProtocolError::Reconcile)
    }

    fn on_doc_set(&mut self, session: &GroupSession, step: &mut Step, msg: &[u8]) -> Result<(), ProtocolError> {
        if !self.round.got_membership || self.round.docs_planned {
            return Err(ProtocolError::Unexpected("document set out of order"));
        }
        self.stats.reconcile_rounds += 1;
        if !self.initiator {
            if self.round.doc_set.is_none() {
                let neg = self.pair_negentropy(session)?;
                self.round.doc_set = Some(DocSetState::Acceptor(neg));
            }
            let Some(DocSetState::Acceptor(neg)) = self.round.doc_set.as_mut() else {
                return Err(ProtocolError::Unexpected("document set state"));
            };
            let reply = crate::guard::catch(|| neg.reconcile(msg))
                .map_err(|()| ProtocolError::Reconcile)?
                .map_err(|_| ProtocolError::Reconcile)?;
            step.send(&mut self.stats, Message::DocSet { msg: reply });
            return Ok(());
        }
        let Some(DocSetState::Dialer(neg, have, need)) = self.round.doc_set.as_mut() else {
            return Err(ProtocolError::Unexpected("document set not started"));
        };
        let next = crate::guard::catch(|| neg.reconcile_with_ids(msg, have, need))
            .map_err(|()| ProtocolError::Reconcile)?
            .map_err(|_| ProtocolError::Reconcile)?;
        if let Some(next) = next {
            step.send(&mut self.stats, Message::DocSet { msg: next });
            return Ok(());
        }
        let Some(DocSetState::Dialer(_, have, need)) = self.round.doc_set.take() else {
            unreachable!("matched above");
        };
        let mine: Vec<DigestEntry> = have
            .iter()
            .filter_map(|id| self.round.pairs.get(id.as_bytes()).copied())
            .collect();
        let theirs: Vec<[u8; 32]> = need.iter().map(|id| *id.as_bytes()).collect();
        self.round.offered = mine.clone();
        step.send(&mut self.stats, Message::DocDiff { mine, theirs });
        Ok(())
    }

    fn on_doc_diff(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        mine: &[DigestEntry],
        theirs: &[[u8; 32]],
    ) -> Result<(), ProtocolError> {
        if self.initiator || self.round.docs_planned || !matches!(self.round.doc_set, Some(DocSetState::Acceptor(_))) {
            return Err(ProtocolError::Unexpected("document diff out of order"));
        }
        self.round.doc_set = None;
        self.round.docs_planned = true;
        let offered: BTreeSet<DocId> = mine.iter().map(|e| e.doc).collect();
        let my_docs: BTreeSet<DocId> = self.round.pairs.values().map(|e| e.doc).collect();
        // My documents whose heads the dialer lacks: all of it if it has none, else settle.
        // Each document once, however often the diff names it.
        let mut named = BTreeMap::new();
        for id in theirs {
            let Some(entry) = self.round.pairs.get(id).copied() else {
                return Err(ProtocolError::Unexpected("a document pair this side never offered"));
            };
            named.insert(entry.doc, entry);
        }
        for entry in named.into_values() {
            if offered.contains(&entry.doc) {
                self.round.unsettled.insert(entry.doc);
            } else {
                let units = session.catch_up_units(&entry.doc, &[], self.chunk_ops);
                self.send_units(session, step, &units);
            }
        }
        let lacking: Vec<DocId> = offered.iter().filter(|d| !my_docs.contains(d)).copied().collect();
        step.send(&mut self.stats, Message::DocPlan { lacking });
        Ok(())
    }

    fn on_doc_plan(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        lacking: &[DocId],
    ) -> Result<(), ProtocolError> {
        if !self.initiator || self.round.docs_planned || self.round.doc_set.is_some() {
            return Err(ProtocolError::Unexpected("document plan out of order"));
        }
        self.round.docs_planned = true;
        let lacking: BTreeSet<DocId> = lacking.iter().copied().collect();
        for entry in std::mem::take(&mut self.round.offered) {
            if lacking.contains(&entry.doc) {
                // They have none of it: the whole document (in covered pieces if large).
                let units = session.catch_up_units(&entry.doc, &[], self.chunk_ops);
                self.send_units(session, step, &units);
                continue;
            }
            self.round.unsettled.insert(entry.doc);
            let mut neg = negentropy_for(session, &entry.doc)?;
            let first = neg.initiate().map_err(|_| ProtocolError::Reconcile)?;
            self.round.negs.insert(entry.doc, (neg, Vec::new()));
            self.stats.reconcile_rounds += 1;
            step.send(
                &mut self.stats,
                Message::Reconcile {
                    doc: entry.doc,
                    msg: first,
                },
            );
        }
        Ok(())
    }

    fn on_reconcile(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        doc: DocId,
        msg: &[u8],
    ) -> Result<(), ProtocolError> {
        if !self.round.unsettled.contains(&doc) {
            return Err(ProtocolError::Unexpected("reconcile for a settled document"));
        }
        self.stats.reconcile_rounds += 1;
        if !self.initiator {
            let (neg, _) = match self.round.negs.entry(doc) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert((negentropy_for(session, &doc)?, Vec::new())),
            };
            let reply = crate::guard::catch(|| neg.reconcile(msg))
                .map_err(|()| ProtocolError::Reconcile)?
                .map_err(|_| ProtocolError::Reconcile)?;
            step.send(&mut self.stats, Message::Reconcile { doc, msg: reply });
            return Ok(());
        }
        let (neg, have) = self
            .round
            .negs
            .get_mut(&doc)
            .ok_or(ProtocolError::Unexpected("reconcile not started"))?;
        let mut need = Vec::new();
        let next = crate::guard::catch(|| neg.reconcile_with_ids(msg, have, &mut need))
            .map_err(|()| ProtocolError::Reconcile)?
            .map_err(|_| ProtocolError::Reconcile)?;
        if let Some(next) = next {
            step.send(&mut self.stats, Message::Reconcile { doc, msg: next });
            return Ok(());
        }
        // Done: send what they lack, then ask for what lies above what we share.
        let (_, have) = self.round.negs.remove(&doc).expect("present above");
        let lacking: Vec<ChangeHash> = have.iter().map(|id| ChangeHash(*id.as_bytes())).collect();
        let shared = session.shared_heads(&doc, &lacking);
        if !lacking.is_empty() {
            let units = session.units_above(&doc, &shared, self.chunk_ops);
            self.send_units(session, step, &units);
        }
        step.send(&mut self.stats, Message::Need { doc, heads: shared });
        self.round.unsettled.remove(&doc);
        Ok(())
    }

    fn on_need(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        doc: DocId,
        heads: &[ChangeHash],
    ) -> Result<(), ProtocolError> {
        if self.initiator || !self.round.unsettled.remove(&doc) {
            return Err(ProtocolError::Unexpected("need for a document not being reconciled"));
        }
        self.round.negs.remove(&doc);
        let units = session.units_above(&doc, heads, self.chunk_ops);
        self.send_units(session, step, &units);
        Ok(())
    }

    fn on_unit(&mut self, session: &mut GroupSession, step: &mut Step, bytes: &[u8]) -> Result<(), ProtocolError> {
        if !self.live {
            return Err(ProtocolError::Unexpected("a unit before membership"));
        }
        match session.receive_unit(bytes) {
            Ok(Received::Applied { doc, changes }) => {
                step.events.push(Event::Applied { doc, changes });
                Ok(())
            }
            Ok(Received::Duplicate) | Ok(Received::Queued) => Ok(()),
            // No key yet, an author whose add has not reached us yet, or a full queue: an
            // honest peer can cause these, so skip the unit; the next round brings it again.
            // So can a change whose judgment depends on the membership as each side saw it
            // when accepting it (the peer took it before it heard of its author's departure
            // or demotion): it was signed by its author, so refusing it here is enough.
            Err(
                ReceiveError::NoKey
                | ReceiveError::NotAMember
                | ReceiveError::QueueFull
                | ReceiveError::OverBudget
                | ReceiveError::Rejected(Rejection::AfterRemoval | Rejection::NotAllowed),
            ) => {
                self.stats.units_skipped += 1;
                Ok(())
            }
            Err(e) => Err(ProtocolError::BadUnit(e)),
        }
    }

    /// Sends `units`, after any membership operation the peer lacks: sealing them may have
    /// rotated the epoch key (content is never sealed again under a key someone who
    /// departed holds), and the peer needs the rotation to open them.
    fn send_units(&mut self, session: &GroupSession, step: &mut Step, units: &[SealedUnit]) {
        let late = self.push_membership(session);
        step.frames.extend(late.frames);
        for unit in units {
            step.send(
                &mut self.stats,
                Message::Unit {
                    bytes: unit.bytes().to_vec(),
                },
            );
        }
    }

    fn maybe_caught_up(&mut self, step: &mut Step) {
        if !self.round.sent_caught_up
            && self.round.docs_planned
            && self.round.unsettled.is_empty()
            && self.round.negs.is_empty()
        {
            self.round.sent_caught_up = true;
            step.send(&mut self.stats, Message::CaughtUp);
        }
        if self.is_caught_up() && !self.round.reported_caught_up {
            self.round.reported_caught_up = true;
            self.rounds_completed += 1;
            step.events.push(Event::CaughtUp);
        }
    }
}

/// A negentropy instance over the change hashes of `doc`.
fn negentropy_for(
    session: &GroupSession,
    doc: &DocId,
) -> Result<Negentropy<'static, NegentropyStorageVector>, ProtocolError> {
    let hashes = session.change_hashes(doc);
    let mut storage = NegentropyStorageVector::with_capacity(hashes.len());
    for h in hashes {
        storage
            .insert(0, Id::from_byte_array(h.0))
            .map_err(|_| ProtocolError::Reconcile)?;
    }
    storage.seal().map_err(|_| ProtocolError::Reconcile)?;
    Negentropy::owned(storage, NEG_FRAME_LIMIT).map_err(|_| ProtocolError::Reconcile)
}

/// The set-reconciliation item for one document: its id and heads, hashed.
fn pair_id(e: &DigestEntry) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&e.doc.to_bytes());
    h.update(&e.heads_hash);
    *h.finalize().as_bytes()
}

/// Where the document-set reconciliation stands.
enum DocSetState {
    /// Dialer: the instance and the pair ids it has / needs so far.
    Dialer(Negentropy<'static, NegentropyStorageVector>, Vec<Id>, Vec<Id>),
    /// Acceptor: the instance answering.
    Acceptor(Negentropy<'static, NegentropyStorageVector>),
}
