//! The audience documents a group session knows of, and how their keys follow their
//! audience.
//!
//! An audience document (a goal shared with chosen supporters, a reach-out to chosen
//! members) has a key of its own, sealed to each member of its audience in a grant its
//! owner signs. When someone in the audience leaves or is removed, the owner's device
//! renews the grant before it seals anything more there: a fresh key, sealed only to those
//! who remain. So removal reaches every key the removed member held, audience keys
//! included. Earlier grants are kept with their keys, so what was sealed under them still
//! opens for those who held them; the newest grant (by its claimed time, then its key id,
//! the same on every device) is the one new content is sealed under.

use crate::audience::AudienceGrant;
use crate::crypto::SymmetricKey;
use crate::group::{
    GroupError, GroupSession, MAX_GRANT_BYTES_PER_OWNER, MAX_GRANTS, MAX_GRANTS_PER_OWNER, ReceiveError,
};
use crate::ids::{DocId, KeyId, MemberId};

/// An audience document this device knows of: its newest grant and key, and the grants
/// that one replaced.
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    /// The newest grant: new content is sealed under its key.
    pub(crate) grant: AudienceGrant,
    /// Its key, if this member is in its audience.
    pub(crate) key: Option<SymmetricKey>,
    /// Grants it replaced, with their keys if held (what was sealed under them still opens).
    earlier: Vec<(AudienceGrant, Option<SymmetricKey>)>,
    /// Everyone any of its grants named: who may have written it.
    writers: Vec<MemberId>,
}

impl Audience {
    pub(crate) fn new(grant: AudienceGrant, key: Option<SymmetricKey>) -> Audience {
        let writers = grant.members.clone();
        Audience {
            grant,
            key,
            earlier: Vec::new(),
            writers,
        }
    }

    /// Takes another grant of the same document: the newest becomes current.
    pub(crate) fn adopt(&mut self, grant: AudienceGrant, key: Option<SymmetricKey>) {
        if self.grants().any(|g| g.key_id() == grant.key_id()) {
            return;
        }
        for m in &grant.members {
            if !self.writers.contains(m) {
                self.writers.push(*m);
            }
        }
        self.writers.sort();
        if grant.is_newer_than(&self.grant) {
            let old_grant = std::mem::replace(&mut self.grant, grant);
            let old_key = std::mem::replace(&mut self.key, key);
            self.earlier.push((old_grant, old_key));
        } else {
            self.earlier.push((grant, key));
        }
    }

    /// The key with id `id`, of this grant or an earlier one, if held.
    pub(crate) fn key_for(&self, id: &KeyId) -> Option<&SymmetricKey> {
        if self.grant.key_id() == *id {
            return self.key.as_ref();
        }
        self.earlier
            .iter()
            .find(|(g, _)| g.key_id() == *id)
            .and_then(|(_, k)| k.as_ref())
    }

    /// Every grant of the document, newest first.
    pub(crate) fn grants(&self) -> impl Iterator<Item = &AudienceGrant> {
        std::iter::once(&self.grant).chain(self.earlier.iter().map(|(g, _)| g))
    }

    /// Every grant with the key this device holds for it.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&AudienceGrant, &SymmetricKey)> {
        std::iter::once((&self.grant, self.key.as_ref()))
            .chain(self.earlier.iter().map(|(g, k)| (g, k.as_ref())))
            .filter_map(|(g, k)| Some((g, k?)))
    }

    /// Everyone any of its grants named, sorted.
    pub(crate) fn writers(&self) -> &[MemberId] {
        &self.writers
    }
}

impl GroupSession {
    /// Records an audience grant; opens its key if this member is in the audience. A
    /// newer grant of a document already known replaces it for what is sealed next.
    pub fn receive_grant(&mut self, grant: AudienceGrant) -> Result<(), ReceiveError> {
        if grant.group != self.group {
            return Err(ReceiveError::WrongGroup);
        }
        let state = self.log.state();
        if !state.members.contains_key(&grant.owner) && !state.departed.contains_key(&grant.owner) {
            return Err(ReceiveError::NotAMember);
        }
        if let Some(a) = self.audiences.get(&grant.doc)
            && a.grants().any(|g| g.key_id() == grant.key_id())
        {
            return Ok(());
        }
        self.check_grant_budget(&grant)?;
        let key = grant.open(&self.me.member(), &self.me.boxed);
        self.hold_grant(grant, key);
        Ok(())
    }

    /// Keeps `grant` (and its key, if held) with its document.
    pub(crate) fn hold_grant(&mut self, grant: AudienceGrant, key: Option<SymmetricKey>) {
        match self.audiences.get_mut(&grant.doc) {
            Some(a) => a.adopt(grant, key),
            None => {
                self.audiences.insert(grant.doc, Audience::new(grant, key));
            }
        }
    }

    /// Whether the group has room for `grant` (see [`MAX_GRANTS`] and the per-owner
    /// limits): judged on what the group and the grant's owner already hold.
    pub(crate) fn check_grant_budget(&self, grant: &AudienceGrant) -> Result<(), ReceiveError> {
        let size = grant.bytes().len();
        let (mut count, mut total, mut owner_count, mut owner_bytes) = (0, 0, 0, 0);
        for g in self.audiences.values().flat_map(Audience::grants) {
            count += 1;
            total += g.bytes().len();
            if g.owner == grant.owner {
                owner_count += 1;
                owner_bytes += g.bytes().len();
            }
        }
        let fits = count < MAX_GRANTS
            && total + size <= crate::membership::MAX_GRANT_BYTES
            && owner_count < MAX_GRANTS_PER_OWNER
            && owner_bytes + size <= MAX_GRANT_BYTES_PER_OWNER;
        if fits { Ok(()) } else { Err(ReceiveError::OverBudget) }
    }

    /// Before this device seals anything into `doc`: if it is one of this member's own
    /// audience documents and someone in its audience has left or was removed, renews its
    /// grant to those who remain, so nothing sealed from now on opens with a key they held.
    pub(crate) fn renew_audience_before_writing(&mut self, doc: &DocId) -> Result<(), GroupError> {
        let me = self.me();
        let state = self.log.state();
        let Some(a) = self.audiences.get(doc) else {
            return Ok(());
        };
        if a.grant.owner != me || a.grant.members.iter().all(|m| state.members.contains_key(m)) {
            return Ok(());
        }
        let stay: Vec<(MemberId, [u8; 32])> = a
            .grant
            .members
            .iter()
            .filter_map(|m| state.members.get(m).map(|info| (*m, info.box_public)))
            .collect();
        let previous = a.grant.clone();
        let key = SymmetricKey::generate(&mut self.rng);
        let grant = AudienceGrant::renew(
            &mut self.rng,
            &previous,
            &self.me.signing,
            self.me.boxed.public(),
            &stay,
            &key,
        )
        .map_err(|_| GroupError::Seal)?;
        self.hold_grant(grant, Some(key));
        Ok(())
    }
}
