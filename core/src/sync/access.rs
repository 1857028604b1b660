//! What the sync engine asks of a group session: digests, lacking operations, change sets.

use std::collections::BTreeSet;

use crate::audience::AudienceGrant;
use crate::group::GroupSession;
use crate::ids::{ChangeHash, DocId, DocKind, MemberId, OpHash};
use crate::membership::SignedOp;
use crate::sync::message::DigestEntry;
use crate::unit::SealedUnit;

impl GroupSession {
    /// Whether `peer` may receive `doc` at all: audience documents go to their audience only,
    /// and a member who joined after a history cut receives no document from before it.
    pub fn may_read(&self, peer: &MemberId, doc: &DocId) -> bool {
        let Some(info) = self.log.state().members.get(peer) else {
            // Someone who left or was removed gets nothing more, whatever they ask.
            return false;
        };
        match doc.kind {
            DocKind::Audience => self.audiences.get(doc).is_some_and(|a| a.grant.members.contains(peer)),
            // A member who joined after a history cut gets only what was written after it.
            _ => self.in_history_of(&info.sees_from, doc),
        }
    }

    /// Hashes of every membership operation held.
    pub fn op_hashes(&self) -> Vec<OpHash> {
        self.log.ops().map(|o| o.hash()).collect()
    }

    /// One membership operation by hash, if this device holds it.
    pub fn membership_op(&self, hash: &OpHash) -> Option<&SignedOp> {
        self.log.get(hash)
    }

    /// The operations a peer holding `theirs` lacks, in an order that respects parents.
    pub fn ops_lacking(&self, theirs: &[OpHash]) -> Vec<SignedOp> {
        let theirs: BTreeSet<OpHash> = theirs.iter().copied().collect();
        let mut ops: Vec<SignedOp> = self
            .log
            .ops()
            .filter(|o| !theirs.contains(&o.hash()))
            .cloned()
            .collect();
        // Parents are always created before children, so the claimed creation time is a
        // good first order; the receiver tolerates any order anyway.
        ops.sort_by_key(|o| (o.op().created_at_ms, o.hash()));
        ops
    }

    /// The audience grants `peer` should hold: every grant naming them (earlier ones too,
    /// for what was sealed under them), and none at all once they left or were removed.
    pub fn grants_for(&self, peer: &MemberId) -> Vec<AudienceGrant> {
        if !self.log.state().members.contains_key(peer) {
            return Vec::new();
        }
        self.audiences
            .values()
            .flat_map(|a| a.grants())
            .filter(|g| g.members.contains(peer))
            .cloned()
            .collect()
    }

    /// A digest of every document `peer` may read (one left empty by dropping the writing
    /// of someone who was never a member is nothing to offer).
    pub fn digest_for(&self, peer: &MemberId) -> Vec<DigestEntry> {
        self.docs
            .iter()
            .filter(|(id, r)| !r.index().is_empty() && self.may_read(peer, id))
            .map(|(id, r)| DigestEntry {
                doc: *id,
                heads_hash: heads_hash(&r.heads()),
                changes: r.index().len() as u64,
            })
            .collect()
    }

    /// Every change hash of `doc`.
    pub fn change_hashes(&self, doc: &DocId) -> Vec<ChangeHash> {
        self.docs.get(doc).map(|r| r.change_hashes()).unwrap_or_default()
    }

    /// The heads of the part of `doc` a peer shares with this device, given `lacking`:
    /// the changes of this device the peer lacks (closed upwards).
    pub fn shared_heads(&self, doc: &DocId, lacking: &[ChangeHash]) -> Vec<ChangeHash> {
        let Some(r) = self.docs.get(doc) else {
            return Vec::new();
        };
        let lacking: BTreeSet<ChangeHash> = lacking.iter().copied().collect();
        let mut heads: BTreeSet<ChangeHash> = r.heads().into_iter().filter(|h| !lacking.contains(h)).collect();
        for h in &lacking {
            for d in r.deps_of(h) {
                if !lacking.contains(&d) {
                    heads.insert(d);
                }
            }
        }
        heads.into_iter().collect()
    }

    /// A unit with everything of `doc` above `shared` (the changes a peer holding `shared`
    /// lacks), or `None` if there is nothing.
    pub fn units_above(&mut self, doc: &DocId, shared: &[ChangeHash], max_ops: u64) -> Vec<SealedUnit> {
        let Some(r) = self.docs.get(doc) else {
            return Vec::new();
        };
        let known: Vec<ChangeHash> = shared.iter().filter(|h| r.index().contains(h)).copied().collect();
        if r.heads().iter().all(|h| known.contains(h)) {
            return Vec::new();
        }
        self.catch_up_units(doc, &known, max_ops)
    }
}

/// BLAKE3 of sorted heads: equal exactly when two replicas hold the same changes.
pub fn heads_hash(heads: &[ChangeHash]) -> [u8; 32] {
    let mut sorted = heads.to_vec();
    sorted.sort();
    let mut h = blake3::Hasher::new();
    for x in &sorted {
        h.update(&x.0);
    }
    *h.finalize().as_bytes()
}
