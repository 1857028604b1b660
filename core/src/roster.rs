//! Membership actions of a [`GroupSession`]: adding and removing members, changing roles,
//! leaving, rotating the epoch key, and which epoch keys this device holds.
//!
//! Each action checks what the resolution rule will check (so an honest device never
//! writes an operation that resolves as invalid), signs one operation whose parents are
//! the current heads, and stores it in the log. The caller makes the session durable
//! (the vault does) and passes the operations on.

use crate::crypto::SymmetricKey;
use crate::group::{GroupError, GroupSession, open_seal, seal_key};
use crate::ids::{DocKind, KeyId, MemberId, OpHash};
use crate::membership::{
    ActorHead, KeySeal, MAX_OP_LEN, MAX_OP_PARENTS, MemberKeys, Op, OpKind, PreviousKeys, RemovalHeads, Role, SignedOp,
};

/// Most earlier epoch keys one rotation carries (each rotation carries its own, so the
/// chain reaches further back).
const PREVIOUS_KEYS: usize = 16;
/// The removal heads are cut off at this many bytes, so the operation stays far inside
/// [`MAX_OP_LEN`] however many documents the member wrote in.
const MAX_HEADS_BYTES: usize = MAX_OP_LEN / 2;

impl GroupSession {
    /// Opens every epoch key sealed to this member by a *valid* operation: a create or
    /// rotate for the epoch it starts, an add for the epoch it names; then, through the
    /// earlier keys each rotation carries, every epoch before one it holds. Only keys of
    /// valid epochs are kept, and a key already held is never replaced, so an invalid or
    /// late operation cannot plant one.
    pub(crate) fn collect_epoch_keys(&mut self) {
        let group = self.group;
        let me = self.me.member();
        let valid_epochs = self.log.state().epochs.clone();
        loop {
            let mut found: Vec<(KeyId, SymmetricKey)> = Vec::new();
            let mut take = |held: &std::collections::BTreeMap<KeyId, SymmetricKey>, epoch: KeyId, key: SymmetricKey| {
                if valid_epochs.contains(&epoch)
                    && !held.contains_key(&epoch)
                    && !found.iter().any(|(e, _)| *e == epoch)
                {
                    found.push((epoch, key));
                }
            };
            for op in self.log.valid_ops() {
                let started = KeyId(op.hash().0);
                let (epoch, seal) = match &op.op().kind {
                    OpKind::Create { seal, .. } => (started, Some(seal)),
                    OpKind::Add { epoch, seal, .. } => (*epoch, Some(seal)),
                    OpKind::Rotate { seals, .. } => (started, seals.iter().find(|s| s.recipient == me)),
                    _ => continue,
                };
                if let Some(key) = seal.and_then(|s| open_seal(&self.me, &group, s)) {
                    take(&self.epoch_keys, epoch, key);
                }
                if let OpKind::Rotate {
                    previous: Some(sealed), ..
                } = &op.op().kind
                    && let Some(key) = self.epoch_keys.get(&started)
                {
                    for (epoch, key) in PreviousKeys::open(&group, key, sealed).unwrap_or_default() {
                        take(&self.epoch_keys, epoch, key);
                    }
                }
            }
            if found.is_empty() {
                return;
            }
            self.epoch_keys.extend(found);
        }
    }

    /// Adds a member (facilitators only), granting the current epoch key. When the group
    /// lets new members see only what is written after they join, the key is rotated
    /// first (without earlier keys), so the new member holds a key nothing was sealed
    /// under yet.
    pub fn add_member(&mut self, keys: MemberKeys, role: Role, now_ms: i64) -> Result<SignedOp, GroupError> {
        if !self.log.state().is_facilitator(&self.me()) {
            return Err(GroupError::NotAllowed("Only facilitators can add members.".into()));
        }
        if self.log.state().ever_member(&keys.member) {
            return Err(GroupError::NotAllowed(
                "That person is or was already a member of this group.".into(),
            ));
        }
        let since_join = self.history_since_join();
        let state = self.log.state();
        if since_join {
            // A history cut: a new generation of documents the newcomer starts from.
            self.rotate_with(now_ms, false)?;
        } else if state.epoch.is_some_and(|e| state.cuts.contains(&e)) {
            // The current key is a cut's, and a newcomer granted it would start from that
            // cut; this group now shares all history, so hand out a key that is not.
            self.rotate_with(now_ms, true)?;
        }
        let (epoch, key) = self.current_epoch_key()?;
        let key = key.clone();
        let seal = seal_key(&mut self.rng, &self.group, &keys.member, &keys.box_public, &key)?;
        let add = self.sign_op(
            OpKind::Add {
                keys,
                role,
                epoch,
                seal,
            },
            now_ms,
        )?;
        if since_join {
            self.carry_forward(now_ms)?;
        }
        Ok(add)
    }

    /// Removes `member` (facilitators only) and at once rotates the epoch key to everyone
    /// who remains, so nothing this device writes from now on is readable by them.
    /// Returns the removal.
    pub fn remove_member(&mut self, member: &MemberId, now_ms: i64) -> Result<SignedOp, GroupError> {
        let state = self.log.state();
        if !state.is_facilitator(&self.me()) {
            return Err(GroupError::NotAllowed("Only facilitators can remove members.".into()));
        }
        if *member == self.me() {
            return Err(GroupError::NotAllowed(
                "You cannot remove yourself; to leave the group, use leave.".into(),
            ));
        }
        if !state.is_member(member) {
            return Err(GroupError::NotAllowed(
                "That person is not a member of this group.".into(),
            ));
        }
        let heads = self.removal_heads(member);
        let removal = self.sign_op(OpKind::Remove { member: *member, heads }, now_ms)?;
        self.rotate(now_ms)?;
        Ok(removal)
    }

    /// Changes `member`'s role (facilitators only). A group always keeps a facilitator:
    /// the only facilitator cannot step down until someone else is one.
    pub fn change_role(&mut self, member: &MemberId, role: Role, now_ms: i64) -> Result<SignedOp, GroupError> {
        let state = self.log.state();
        if !state.is_facilitator(&self.me()) {
            return Err(GroupError::NotAllowed("Only facilitators can change roles.".into()));
        }
        let info = state
            .members
            .get(member)
            .ok_or_else(|| GroupError::NotAllowed("That person is not a member of this group.".into()))?;
        if info.role == role {
            return Err(GroupError::NotAllowed(format!("They are already a {}.", role.as_str())));
        }
        let facilitators = state.members.values().filter(|m| m.role == Role::Facilitator).count();
        if role == Role::Member && facilitators == 1 {
            return Err(GroupError::NotAllowed(
                "A group needs a facilitator: make someone else a facilitator first.".into(),
            ));
        }
        // A facilitator made a member: what they wrote to the group document so far stays.
        let heads = match role {
            Role::Member => self
                .removal_heads(member)
                .into_iter()
                .filter(|(doc, _)| doc.kind == DocKind::Group)
                .collect(),
            Role::Facilitator => Vec::new(),
        };
        self.sign_op(
            OpKind::ChangeRole {
                member: *member,
                role,
                heads,
            },
            now_ms,
        )
    }

    /// Leaves the group. The remaining members rotate the key when they see it; this
    /// device keeps what it already has, but writes nothing more to the group.
    pub fn leave(&mut self, now_ms: i64) -> Result<SignedOp, GroupError> {
        let me = self.me();
        if !self.log.state().is_member(&me) {
            return Err(GroupError::NotAllowed(
                "You are no longer a member of this group.".into(),
            ));
        }
        let heads = self.removal_heads(&me);
        self.sign_op(OpKind::Leave { heads }, now_ms)
    }

    /// Starts a new epoch: a fresh key sealed to every current member individually, with
    /// the keys of recent epochs inside it for reading history.
    pub fn rotate(&mut self, now_ms: i64) -> Result<SignedOp, GroupError> {
        self.rotate_with(now_ms, true)
    }

    /// Rotates if resolution says a member should (someone departed still holds the
    /// current key, or a member lacks it) and this device is a member. Returns the
    /// rotation made, if any.
    pub fn rotate_if_needed(&mut self, now_ms: i64) -> Result<Option<SignedOp>, GroupError> {
        let state = self.log.state();
        if !state.needs_rotation || !state.is_member(&self.me()) {
            return Ok(None);
        }
        self.rotate(now_ms).map(Some)
    }

    /// What a device does after its membership state changed: rotate at once if
    /// resolution asks for a rotation and this device is the one designated for it (the
    /// longest-standing current facilitator), then announce this epoch's transport key
    /// (under this epoch's key) if it is not announced yet. Other members rotate only
    /// when they next write (see [`GroupSession::rotate_before_writing`]), so a leave in
    /// a group of thirty does not make thirty rotations.
    pub fn settle(&mut self, now_ms: i64) -> Result<(), GroupError> {
        if self.is_designated_rotator() {
            self.rotate_if_needed(now_ms)?;
        }
        if self.log.state().is_member(&self.me()) && self.current_epoch_key().is_ok() {
            self.announce_transport()?;
            self.carry_forward(now_ms)?;
        }
        Ok(())
    }

    /// Whether this device rotates at once when a rotation is due.
    fn is_designated_rotator(&self) -> bool {
        let state = self.log.state();
        state
            .members
            .values()
            .filter(|m| m.role == Role::Facilitator)
            .min_by_key(|m| m.seniority)
            .is_some_and(|m| m.id == self.me())
    }

    /// Rotates first if a rotation is due, so nothing this device seals after it applied
    /// a removal or leave uses a key someone who departed holds. (The rotation's claimed
    /// time is that of the latest operation it follows: no clock is at hand here.)
    pub(crate) fn rotate_before_writing(&mut self) -> Result<(), GroupError> {
        let state = self.log.state();
        if !state.needs_rotation || !state.is_member(&self.me()) {
            return Ok(());
        }
        // Once per state: if our own rotation is still a head (nothing arrived since),
        // another would not help.
        let me = self.me();
        let rotated_last = self.log.heads().iter().any(|h| {
            self.log
                .get(h)
                .is_some_and(|o| o.op().author == me && matches!(o.op().kind, OpKind::Rotate { .. }))
        });
        if rotated_last {
            return Ok(());
        }
        let latest = self
            .log
            .heads()
            .iter()
            .filter_map(|h| self.log.get(h).map(|o| o.op().created_at_ms))
            .max()
            .unwrap_or(0);
        self.rotate(latest).map(|_| ())
    }

    fn rotate_with(&mut self, now_ms: i64, with_history: bool) -> Result<SignedOp, GroupError> {
        // A rotation that carries earlier keys continues the current generation, which
        // must then be one every member may read; otherwise it starts a new one.
        let with_history = with_history && self.generation_readable_by_all();
        let state = self.log.state();
        if !state.is_member(&self.me()) {
            return Err(GroupError::NotAllowed(
                "You are no longer a member of this group.".into(),
            ));
        }
        let key = SymmetricKey::generate(&mut self.rng);
        let recipients: Vec<(MemberId, [u8; 32])> = state.members.values().map(|m| (m.id, m.box_public)).collect();
        // Earlier keys go to every recipient, so none from before the history cut a
        // current member joined at (docs/MEMBERSHIP.md, generations).
        let held: Vec<(KeyId, SymmetricKey)> = self
            .epochs_readable_by_all()
            .iter()
            .rev()
            .filter_map(|e| self.epoch_keys.get(e).map(|k| (*e, k.clone())))
            .take(PREVIOUS_KEYS)
            .collect();
        let mut seals: Vec<KeySeal> = Vec::with_capacity(recipients.len());
        for (member, box_public) in &recipients {
            seals.push(seal_key(&mut self.rng, &self.group, member, box_public, &key)?);
        }
        let previous = with_history.then(|| PreviousKeys::seal(&mut self.rng, &self.group, &key, &held));
        let op = self.sign_op(OpKind::Rotate { seals, previous }, now_ms)?;
        self.epoch_keys.insert(KeyId(op.hash().0), key);
        // A new epoch, a new endpoint key: announce it under the new key.
        self.announce_transport()?;
        Ok(op)
    }

    /// Signs `kind` as this member, following the current heads, and stores it. At most
    /// [`MAX_OP_PARENTS`] heads are named (the format's limit): valid ones first, latest
    /// first, so operations someone piles up cannot make ours unreadable.
    fn sign_op(&mut self, kind: OpKind, now_ms: i64) -> Result<SignedOp, GroupError> {
        let heads = self.log.heads();
        let parents: Vec<OpHash> = if heads.len() <= MAX_OP_PARENTS {
            heads
        } else {
            let valid = &self.log.state().valid;
            let rank = |h: &OpHash| valid.iter().position(|v| v == h);
            let mut ranked = heads;
            // Valid heads by resolved position, latest first; then the others by hash.
            ranked.sort_by_key(|h| (rank(h).map_or(0, |p| usize::MAX - p), *h));
            ranked.sort_by_key(|h| rank(h).is_none());
            ranked.truncate(MAX_OP_PARENTS);
            ranked
        };
        let op = Op {
            group: self.group,
            author: self.me(),
            parents,
            created_at_ms: now_ms,
            kind,
        }
        .sign(&self.me.signing);
        self.change_log(|log| log.insert(op.clone()))?;
        Ok(op)
    }

    /// Per document this device holds, the latest change of each install of `member`:
    /// what a removal of them records.
    fn removal_heads(&self, member: &MemberId) -> RemovalHeads {
        let mut out = RemovalHeads::new();
        let mut bytes = 0;
        for replica in self.docs.values() {
            let heads: Vec<ActorHead> = replica.index().actor_heads(member);
            if heads.is_empty() {
                continue;
            }
            bytes += 40 + heads.len() * 44;
            if bytes > MAX_HEADS_BYTES || out.len() >= crate::membership::MAX_HEAD_DOCS {
                tracing::warn!("removal records the heads of only some documents");
                break;
            }
            out.push((replica.id(), heads));
        }
        out
    }
}
