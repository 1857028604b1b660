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
use crate::ids::{ChangeHash, DocId, MemberId};
use crate::membership::SignedOp;
use crate::sync::message::{DigestEntry, Message};
use crate::unit::SealedUnit;
use crate::wire::DecodeError;

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
    /// Units skipped because this device holds no key for them.
    pub units_skipped: u64,
}

/// One peer's sync session for one group.
pub struct PeerSync {
    peer: MemberId,
    initiator: bool,
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
    stats: SyncStats,
}

impl std::fmt::Debug for PeerSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSync")
            .field("peer", &self.peer)
            .field("initiator", &self.initiator)
            .field("unsettled", &self.unsettled.len())
            .field("caught_up", &(self.sent_caught_up, self.got_caught_up))
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
            got_hello: false,
            got_membership: false,
            doc_set: None,
            pairs: BTreeMap::new(),
            docs_planned: false,
            offered: Vec::new(),
            negs: BTreeMap::new(),
            unsettled: BTreeSet::new(),
            sent_caught_up: false,
            got_caught_up: false,
            reported_caught_up: false,
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

    /// The peer.
    pub fn peer(&self) -> MemberId {
        self.peer
    }

    /// Whether both sides have sent each other everything the other lacked.
    pub fn is_caught_up(&self) -> bool {
        self.sent_caught_up && self.got_caught_up
    }

    /// Counters so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// A unit made or accepted here while connected: sent at once if the peer may read it.
    pub fn push(&mut self, session: &GroupSession, unit: &SealedUnit) -> Step {
        let mut step = Step::default();
        if self.got_membership && session.may_read(&self.peer, &unit.header().doc) {
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
        match msg {
            Message::Hello { group, ops } => self.on_hello(session, &mut step, group, &ops)?,
            Message::Membership { ops, grants } => self.on_membership(session, &mut step, &ops, &grants)?,
            Message::DocSet { msg } => self.on_doc_set(session, &mut step, &msg)?,
            Message::DocDiff { mine, theirs } => self.on_doc_diff(session, &mut step, &mine, &theirs)?,
            Message::DocPlan { lacking } => self.on_doc_plan(session, &mut step, &lacking)?,
            Message::Reconcile { doc, msg } => self.on_reconcile(session, &mut step, doc, &msg)?,
            Message::Need { doc, heads } => self.on_need(session, &mut step, doc, &heads)?,
            Message::Unit { bytes } => self.on_unit(session, &mut step, &bytes)?,
            Message::JoinRequest { .. } | Message::JoinAccepted { .. } => {
                return Err(ProtocolError::Unexpected("a join message inside a sync"));
            }
            Message::CaughtUp => {
                if self.got_caught_up {
                    return Err(ProtocolError::Unexpected("a second caught-up"));
                }
                self.got_caught_up = true;
            }
        }
        self.maybe_caught_up(&mut step);
        Ok(step)
    }

    fn on_hello(
        &mut self,
        session: &GroupSession,
        step: &mut Step,
        group: crate::ids::GroupId,
        ops: &[crate::ids::OpHash],
    ) -> Result<(), ProtocolError> {
        if self.got_hello {
            return Err(ProtocolError::Unexpected("a second hello"));
        }
        if group != session.id() {
            return Err(ProtocolError::WrongGroup);
        }
        self.got_hello = true;
        let ops = session.ops_lacking(ops).iter().map(|o| o.bytes().to_vec()).collect();
        let grants = session
            .grants_for(&self.peer)
            .iter()
            .map(|g| g.bytes().to_vec())
            .collect();
        step.send(&mut self.stats, Message::Membership { ops, grants });
        Ok(())
    }

    fn on_membership(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        ops: &[Vec<u8>],
        grants: &[Vec<u8>],
    ) -> Result<(), ProtocolError> {
        if !self.got_hello || self.got_membership {
            return Err(ProtocolError::Unexpected("membership out of order"));
        }
        self.got_membership = true;
        let ops: Vec<SignedOp> = ops
            .iter()
            .map(|b| SignedOp::decode(b))
            .collect::<Result<_, _>>()
            .map_err(|_| ProtocolError::BadMembership)?;
        session.receive_ops(&ops).map_err(|_| ProtocolError::BadMembership)?;
        for g in grants {
            let grant = AudienceGrant::decode(g).map_err(|_| ProtocolError::BadMembership)?;
            session.receive_grant(grant).map_err(|_| ProtocolError::BadMembership)?;
        }
        if self.initiator {
            let mut neg = self.pair_negentropy(session)?;
            let first = neg.initiate().map_err(|_| ProtocolError::Reconcile)?;
            self.doc_set = Some(DocSetState::Dialer(neg, Vec::new(), Vec::new()));
            self.stats.reconcile_rounds += 1;
            step.send(&mut self.stats, Message::DocSet { msg: first });
        }
        Ok(())
    }

    /// A negentropy instance over the `(document, heads)` pairs `peer` may read.
    fn pair_negentropy(
        &mut self,
        session: &GroupSession,
    ) -> Result<Negentropy<'static, NegentropyStorageVector>, ProtocolError> {
        self.pairs = session
            .digest_for(&self.peer)
            .into_iter()
            .map(|e| (pair_id(&e), e))
            .collect();
        let mut storage = NegentropyStorageVector::with_capacity(self.pairs.len());
        for id in self.pairs.keys() {
            storage
                .insert(0, Id::from_byte_array(*id))
                .map_err(|_| ProtocolError::Reconcile)?;
        }
        storage.seal().map_err(|_| ProtocolError::Reconcile)?;
        Negentropy::owned(storage, NEG_FRAME_LIMIT).map_err(|_| ProtocolError::Reconcile)
    }

    fn on_doc_set(&mut self, session: &GroupSession, step: &mut Step, msg: &[u8]) -> Result<(), ProtocolError> {
        if !self.got_membership || self.docs_planned {
            return Err(ProtocolError::Unexpected("document set out of order"));
        }
        self.stats.reconcile_rounds += 1;
        if !self.initiator {
            if self.doc_set.is_none() {
                let neg = self.pair_negentropy(session)?;
                self.doc_set = Some(DocSetState::Acceptor(neg));
            }
            let Some(DocSetState::Acceptor(neg)) = self.doc_set.as_mut() else {
                return Err(ProtocolError::Unexpected("document set state"));
            };
            let reply = crate::guard::catch(|| neg.reconcile(msg))
                .map_err(|()| ProtocolError::Reconcile)?
                .map_err(|_| ProtocolError::Reconcile)?;
            step.send(&mut self.stats, Message::DocSet { msg: reply });
            return Ok(());
        }
        let Some(DocSetState::Dialer(neg, have, need)) = self.doc_set.as_mut() else {
            return Err(ProtocolError::Unexpected("document set not started"));
        };
        let next = crate::guard::catch(|| neg.reconcile_with_ids(msg, have, need))
            .map_err(|()| ProtocolError::Reconcile)?
            .map_err(|_| ProtocolError::Reconcile)?;
        if let Some(next) = next {
            step.send(&mut self.stats, Message::DocSet { msg: next });
            return Ok(());
        }
        let Some(DocSetState::Dialer(_, have, need)) = self.doc_set.take() else {
            unreachable!("matched above");
        };
        let mine: Vec<DigestEntry> = have
            .iter()
            .filter_map(|id| self.pairs.get(id.as_bytes()).copied())
            .collect();
        let theirs: Vec<[u8; 32]> = need.iter().map(|id| *id.as_bytes()).collect();
        self.offered = mine.clone();
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
        if self.initiator || self.docs_planned || !matches!(self.doc_set, Some(DocSetState::Acceptor(_))) {
            return Err(ProtocolError::Unexpected("document diff out of order"));
        }
        self.doc_set = None;
        self.docs_planned = true;
        let offered: BTreeSet<DocId> = mine.iter().map(|e| e.doc).collect();
        let my_docs: BTreeSet<DocId> = self.pairs.values().map(|e| e.doc).collect();
        // My documents whose heads the dialer lacks: all of it if it has none, else settle.
        for id in theirs {
            let Some(entry) = self.pairs.get(id).copied() else {
                return Err(ProtocolError::Unexpected("a document pair this side never offered"));
            };
            if offered.contains(&entry.doc) {
                self.unsettled.insert(entry.doc);
            } else if let Some(unit) = session.document_unit(&entry.doc) {
                step.send(
                    &mut self.stats,
                    Message::Unit {
                        bytes: unit.bytes().to_vec(),
                    },
                );
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
        if !self.initiator || self.docs_planned || self.doc_set.is_some() {
            return Err(ProtocolError::Unexpected("document plan out of order"));
        }
        self.docs_planned = true;
        let lacking: BTreeSet<DocId> = lacking.iter().copied().collect();
        for entry in std::mem::take(&mut self.offered) {
            if lacking.contains(&entry.doc) {
                // They have none of it: the whole document in one unit.
                if let Some(unit) = session.document_unit(&entry.doc) {
                    step.send(
                        &mut self.stats,
                        Message::Unit {
                            bytes: unit.bytes().to_vec(),
                        },
                    );
                }
                continue;
            }
            self.unsettled.insert(entry.doc);
            let mut neg = negentropy_for(session, &entry.doc)?;
            let first = neg.initiate().map_err(|_| ProtocolError::Reconcile)?;
            self.negs.insert(entry.doc, (neg, Vec::new()));
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
        if !self.unsettled.contains(&doc) {
            return Err(ProtocolError::Unexpected("reconcile for a settled document"));
        }
        self.stats.reconcile_rounds += 1;
        if !self.initiator {
            let (neg, _) = match self.negs.entry(doc) {
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
        let (_, have) = self.negs.remove(&doc).expect("present above");
        let lacking: Vec<ChangeHash> = have.iter().map(|id| ChangeHash(*id.as_bytes())).collect();
        let shared = session.shared_heads(&doc, &lacking);
        if !lacking.is_empty()
            && let Some(unit) = session.unit_above(&doc, &shared)
        {
            step.send(
                &mut self.stats,
                Message::Unit {
                    bytes: unit.bytes().to_vec(),
                },
            );
        }
        step.send(&mut self.stats, Message::Need { doc, heads: shared });
        self.unsettled.remove(&doc);
        Ok(())
    }

    fn on_need(
        &mut self,
        session: &mut GroupSession,
        step: &mut Step,
        doc: DocId,
        heads: &[ChangeHash],
    ) -> Result<(), ProtocolError> {
        if self.initiator || !self.unsettled.remove(&doc) {
            return Err(ProtocolError::Unexpected("need for a document not being reconciled"));
        }
        self.negs.remove(&doc);
        if let Some(unit) = session.unit_above(&doc, heads) {
            step.send(
                &mut self.stats,
                Message::Unit {
                    bytes: unit.bytes().to_vec(),
                },
            );
        }
        Ok(())
    }

    fn on_unit(&mut self, session: &mut GroupSession, step: &mut Step, bytes: &[u8]) -> Result<(), ProtocolError> {
        if !self.got_membership {
            return Err(ProtocolError::Unexpected("a unit before membership"));
        }
        match session.receive_unit(bytes) {
            Ok(Received::Applied { doc, changes }) => {
                step.events.push(Event::Applied { doc, changes });
                Ok(())
            }
            Ok(Received::Duplicate) | Ok(Received::Queued) => Ok(()),
            Err(ReceiveError::NoKey) => {
                self.stats.units_skipped += 1;
                Ok(())
            }
            Err(e) => Err(ProtocolError::BadUnit(e)),
        }
    }

    fn maybe_caught_up(&mut self, step: &mut Step) {
        if !self.sent_caught_up && self.docs_planned && self.unsettled.is_empty() && self.negs.is_empty() {
            self.sent_caught_up = true;
            step.send(&mut self.stats, Message::CaughtUp);
        }
        if self.is_caught_up() && !self.reported_caught_up {
            self.reported_caught_up = true;
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
