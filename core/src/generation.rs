//! Generations: where a group's documents start afresh when it keeps history from
//! newcomers.
//!
//! Automerge cannot apply a change without the changes it depends on, so a member who
//! must not read what was written before they joined cannot be given the documents that
//! hold it — not even their newest changes. So when a group keeps history closed, adding a
//! member first makes a *history cut* (a rotation that carries no earlier keys), and every
//! member, group and meeting document written after it is a new document of the new
//! *generation* (see `docs/MEMBERSHIP.md`, "History closed to newcomers"):
//!
//! - member documents of a later generation have ids derived from the owner and the
//!   generation ([`DocId::member_doc_in`]); a meeting's id carries the generation it was
//!   scheduled in ([`DocId::meeting_doc`]); the group document (name, agreements,
//!   settings: no member's content) is one for all generations;
//! - views read every generation this device holds: items are the union, names and
//!   transport keys come from the newest document that has them;
//! - a peer receives only documents of the generation its add granted and of those that
//!   descend from it (`GroupSession::may_read`), so no catch-up carries older history —
//!   or history written concurrently elsewhere — to a newcomer.
//!
//! Where each held document belongs is computed once when it arrives (its owner is the
//! author of its changes) and kept in `GroupSession::places`, so nothing here costs more
//! than one pass over the generations per document.

use crate::group::GroupSession;
use crate::ids::{DocId, DocKind, GroupId, KeyId, MemberId};
use crate::membership::MembershipState;
use crate::model::views;
use crate::replica::Replica;

/// Where a held document belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// Its generation's position among the group's generations (0 for the first).
    pub(crate) rank: usize,
    /// Whose document it is (member documents only).
    pub(crate) owner: Option<MemberId>,
}

/// The form the [`DocId`] constructors take: `None` for the first generation.
fn later(state: &MembershipState, rank: usize) -> Option<&KeyId> {
    state.generations.get(rank).filter(|_| rank > 0)
}

/// Whether `doc` is a member document of `author` in some generation of `state`.
pub(crate) fn owns(state: &MembershipState, doc: &DocId, author: &MemberId) -> bool {
    doc.kind == DocKind::Member
        && (doc.bytes == author.0
            || state
                .generations
                .iter()
                .skip(1)
                .any(|g| DocId::member_doc_in(author, Some(g)) == *doc))
}

/// Where `doc` belongs, if that can be told: a member document needs its owner among the
/// authors of `replica` and a known generation.
fn place(group: &GroupId, state: &MembershipState, doc: &DocId, replica: Option<&Replica>) -> Option<Place> {
    let ranks = 0..state.generations.len();
    match doc.kind {
        DocKind::Group => (*doc == DocId::group_doc(group)).then_some(Place { rank: 0, owner: None }),
        DocKind::Member => {
            let named = MemberId(doc.bytes);
            let owner = if state.ever_member(&named) {
                named
            } else {
                replica?.index().authors().next()?
            };
            ranks
                .into_iter()
                .find(|r| DocId::member_doc_in(&owner, later(state, *r)) == *doc)
                .map(|rank| Place {
                    rank,
                    owner: Some(owner),
                })
        }
        DocKind::Meeting => {
            let rank = state
                .generations
                .iter()
                .skip(1)
                .position(|g| g.0[..16] == doc.bytes[16..])
                .map_or(0, |i| i + 1);
            Some(Place { rank, owner: None })
        }
        // Audience documents go to their audience, whatever the generation.
        DocKind::Audience => Some(Place { rank: 0, owner: None }),
    }
}

impl GroupSession {
    /// The generation members write in now, or `None` while it is the first.
    pub(crate) fn later_generation(&self) -> Option<KeyId> {
        let state = self.log.state();
        state
            .generation()
            .filter(|g| state.generation_rank(g).is_some_and(|r| r > 0))
    }

    /// This member's document in the current generation.
    pub(crate) fn my_doc(&self) -> DocId {
        DocId::member_doc_in(&self.me(), self.later_generation().as_ref())
    }

    /// Whether every current member may read the generation members write in now. Not so
    /// after concurrent history cuts (two facilitators each adding someone): neither
    /// newcomer may read the other's generation, so the rotation that settles the
    /// concurrent epochs must be a cut itself, one both descend to.
    pub(crate) fn generation_readable_by_all(&self) -> bool {
        let state = self.log.state();
        let Some(now) = state.generation().and_then(|g| state.generation_rank(&g)) else {
            return true;
        };
        state.members.values().all(|m| {
            let from = state.generation_rank(&m.sees_from).unwrap_or(0);
            from == 0 || state.generation_follows(now, from)
        })
    }

    /// The valid epochs every current member may hold: those of the generation the most
    /// recently admitted newcomer reads from, and later ones.
    pub(crate) fn epochs_readable_by_all(&self) -> Vec<KeyId> {
        let state = self.log.state();
        let floor = state
            .members
            .values()
            .filter_map(|m| state.generation_rank(&m.sees_from))
            .max()
            .unwrap_or(0);
        let mut rank = 0;
        let mut out = Vec::new();
        for epoch in &state.epochs {
            if let Some(r) = state.generation_rank(epoch) {
                rank = r;
            }
            if rank >= floor {
                out.push(*epoch);
            }
        }
        out
    }

    /// Notes where the held documents not yet placed belong; with `all`, places every one
    /// afresh (after the generations changed, a rank may have moved).
    pub(crate) fn refresh_places(&mut self, all: bool) {
        if all {
            self.places.clear();
            self.owned.clear();
        }
        let unplaced: Vec<DocId> = self
            .docs
            .keys()
            .filter(|d| !self.places.contains_key(d))
            .copied()
            .collect();
        for doc in unplaced {
            self.place_doc(doc);
        }
    }

    /// Notes where `doc` belongs, if it is held and not placed yet.
    pub(crate) fn place_doc(&mut self, doc: DocId) {
        if self.places.contains_key(&doc) {
            return;
        }
        if let Some(p) = self
            .docs
            .get(&doc)
            .and_then(|r| place(&self.group, self.log.state(), &doc, Some(r)))
        {
            self.places.insert(doc, p);
            if let Some(owner) = p.owner {
                self.owned.entry(owner).or_default().insert(doc);
            }
        }
    }

    /// Where a held document belongs, if known.
    pub(crate) fn place_of(&self, doc: &DocId) -> Option<Place> {
        self.places.get(doc).copied()
    }

    /// The owner of a member or audience document.
    pub(crate) fn doc_owner(&self, doc: &DocId) -> Option<MemberId> {
        match doc.kind {
            DocKind::Audience => self.audiences.get(doc).map(|a| a.grant.owner),
            DocKind::Member => self.place_of(doc).and_then(|p| p.owner),
            DocKind::Group | DocKind::Meeting => None,
        }
    }

    /// Whether a member whose history starts at generation `sees_from` may receive `doc`:
    /// the group document always; any other only if it belongs to that generation or one
    /// descending from it (a document that cannot be placed goes to no one: a peer could
    /// not place it either).
    pub(crate) fn in_history_of(&self, sees_from: &KeyId, doc: &DocId) -> bool {
        let state = self.log.state();
        let from = state.generation_rank(sees_from).unwrap_or(0);
        doc.kind == DocKind::Group
            || self
                .place_of(doc)
                .is_some_and(|p| from == 0 || state.generation_follows(p.rank, from))
    }

    /// The newest value `f` finds in `member`'s documents held.
    pub(crate) fn newest_member_value<T>(&self, member: &MemberId, f: impl Fn(&Replica) -> Option<T>) -> Option<T> {
        let mut docs: Vec<(&Replica, usize)> = self
            .owned
            .get(member)
            .into_iter()
            .flatten()
            .filter_map(|d| Some((self.docs.get(d)?, self.place_of(d)?.rank)))
            .collect();
        docs.sort_by_key(|(_, rank)| std::cmp::Reverse(*rank));
        docs.into_iter().find_map(|(r, _)| f(r))
    }

    /// After a history cut: writes into this member's new document what others need from
    /// it — its display name and agreement acknowledgement (the transport key is announced
    /// by `settle`) — so a newcomer who holds only the new generation can tell who is who.
    /// Does nothing in the first generation or when already done.
    pub(crate) fn carry_forward(&mut self, now_ms: i64) -> Result<(), crate::group::GroupError> {
        if self.later_generation().is_none() {
            return Ok(());
        }
        let me = self.me();
        let mine = self.my_doc();
        if self.docs.get(&mine).and_then(views::display_name).is_none()
            && let Some(name) = self.newest_member_value(&me, views::display_name)
        {
            self.edit_my_doc(|tx| crate::model::edits::set_display_name(tx, &name))?;
        }
        if let Some(agreement) = self.agreement()
            && agreement.acknowledged_by.iter().any(|p| p.id == me.to_hex())
            && !self
                .docs
                .get(&mine)
                .is_some_and(|r| views::acknowledged(r, &agreement.version))
        {
            self.edit_my_doc(|tx| crate::model::edits::acknowledge(tx, &agreement.version, now_ms))?;
        }
        Ok(())
    }
}
