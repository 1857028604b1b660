//! The resolution rule of `docs/MEMBERSHIP.md`: which operations of a membership DAG are
//! valid, and the state the valid ones build. A pure function of the set of operations, so
//! every device holding the same set computes the same state.
//!
//! In short: operations are taken in one deterministic causal order (Kahn's algorithm,
//! ties by hash). An operation is judged against `S(x)`, the state built from the valid
//! operations among its own ancestors. Strong removal and strong demotion are a fixpoint
//! over a *voided* set: each pass's verdicts decide the next set, until it stops
//! changing; if the sets ever cycle, the set only grows from then on, so the loop ends.
//! The result depends only on the operations.

use std::collections::{BTreeMap, BTreeSet};

use super::{MemberInfo, Op, OpKind, RemovalHeads, Role, SignedOp};
use crate::ids::{GroupId, KeyId, MemberId, OpHash};

/// The resolved membership of a group.
#[derive(Debug, Clone, Default)]
pub struct MembershipState {
    /// Current members by id.
    pub members: BTreeMap<MemberId, MemberInfo>,
    /// Members who were removed or left, with the heads every valid removal recorded.
    pub departed: BTreeMap<MemberId, RemovalHeads>,
    /// People named only by adds that turned out void (their author was removed at the
    /// same moment): never members. Devices that took them for members meanwhile may hold
    /// their writing; it is judged as a departed member's with nothing recorded, so only
    /// what a current member built on stands.
    pub voided: BTreeSet<MemberId>,
    /// Members made members again after being facilitators, with the heads every valid
    /// such demotion recorded: while they are not facilitators, their changes to the
    /// group document stay acceptable only up to those.
    pub demoted: BTreeMap<MemberId, RemovalHeads>,
    /// The current epoch: among the valid epochs no valid rotation descends from, the
    /// lowest hash of those whose key exactly the current members hold (or, while a
    /// rotation is needed, the lowest hash of them all).
    pub epoch: Option<KeyId>,
    /// Every valid epoch, in resolved order.
    pub epochs: Vec<KeyId>,
    /// The valid *history cuts* (rotations that carry no earlier keys, which an add makes
    /// when a group keeps history from new members), in resolved order, after the
    /// group's first epoch. Members write in the last one's generation (see
    /// `docs/MEMBERSHIP.md`, "History closed to newcomers").
    pub cuts: Vec<KeyId>,
    /// Every generation a document may belong to, in resolved order: the first epoch,
    /// then every rotation without earlier keys held, valid or not (so a document written
    /// in a cut that later turns out void still has a place, and every device places it
    /// alike).
    pub generations: Vec<KeyId>,
    /// Per generation (by rank), the earlier generations it descends from.
    generation_ancestors: Vec<Bits>,
    /// Per valid epoch, who its key was sealed to: the creator or a rotation's recipients,
    /// plus members whose valid add names that epoch.
    pub holders: BTreeMap<KeyId, BTreeSet<MemberId>>,
    /// Whether the current epoch's key is held by someone who departed, or not held by
    /// every member. Any member may then issue a rotation (see `docs/MEMBERSHIP.md`).
    pub needs_rotation: bool,
    /// Operations that were valid, in resolved order.
    pub valid: Vec<OpHash>,
}

impl MembershipState {
    /// Whether `member` is a current facilitator.
    pub fn is_facilitator(&self, member: &MemberId) -> bool {
        self.members.get(member).is_some_and(|m| m.role == Role::Facilitator)
    }

    /// Whether `member` is a current member.
    pub fn is_member(&self, member: &MemberId) -> bool {
        self.members.contains_key(member)
    }

    /// Whether `member` was ever in the group (current or departed).
    pub fn ever_member(&self, member: &MemberId) -> bool {
        self.members.contains_key(member) || self.departed.contains_key(member)
    }

    /// The generation members write in now: the latest valid cut, else the first epoch
    /// (none before the create).
    pub fn generation(&self) -> Option<KeyId> {
        self.cuts.last().or(self.generations.first()).copied()
    }

    /// Where `generation` stands among the generations (0 for the first), if it is one.
    pub fn generation_rank(&self, generation: &KeyId) -> Option<usize> {
        self.generations.iter().position(|g| g == generation)
    }

    /// Whether generation `later` is `earlier` or descends from it (by rank): what a
    /// member who joined at `earlier` may read.
    pub fn generation_follows(&self, later: usize, earlier: usize) -> bool {
        later == earlier || self.generation_ancestors.get(later).is_some_and(|a| a.get(earlier))
    }
}

/// A set of positions in the resolved order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, w)| {
            let mut w = *w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

/// The DAG in resolved order, with each operation's ancestors.
struct Dag<'a> {
    group: GroupId,
    order: Vec<&'a SignedOp>,
    /// Strict ancestors of each position.
    anc: Vec<Bits>,
    /// Positions of the removals (remove or leave) of each member.
    removals_of: BTreeMap<MemberId, Vec<usize>>,
    /// Positions of the role changes that make each member an ordinary member.
    demotions_of: BTreeMap<MemberId, Vec<usize>>,
}

/// Whom an operation removes, if it is a removal.
fn removes(op: &Op) -> Option<MemberId> {
    match &op.kind {
        OpKind::Remove { member, .. } => Some(*member),
        OpKind::Leave { .. } => Some(op.author),
        _ => None,
    }
}

/// Resolves `ops` (which must be closed under parents, with `genesis` its only root).
pub(super) fn resolve(group: &GroupId, genesis: OpHash, ops: &BTreeMap<OpHash, SignedOp>) -> MembershipState {
    let dag = Dag::new(*group, ops);
    debug_assert_eq!(dag.order.first().map(|o| o.hash()), Some(genesis));
    let n = dag.order.len();
    // Recompute the voided set from each pass's verdicts until it stops changing. A
    // removal that turns out void then voids nothing. Should the sets cycle (validity
    // that depends on itself: docs/MEMBERSHIP.md), switch to growing the set only, which
    // must end.
    let mut excluded = Bits::new(n);
    let mut seen: Vec<Bits> = vec![excluded.clone()];
    let mut growing = false;
    loop {
        let (valid, state) = dag.validity(&excluded);
        let mut next = if growing { excluded.clone() } else { Bits::new(n) };
        for x in 0..n {
            if dag.voided(x, &valid) {
                next.set(x);
            }
        }
        if next == excluded {
            return dag.finish(state, &valid);
        }
        if !growing && seen.contains(&next) {
            growing = true;
            for earlier in &seen {
                next.union(earlier);
            }
        }
        seen.push(next.clone());
        excluded = next;
    }
}

impl<'a> Dag<'a> {
    fn new(group: GroupId, ops: &'a BTreeMap<OpHash, SignedOp>) -> Dag<'a> {
        let order = causal_order(ops);
        let n = order.len();
        let pos: BTreeMap<OpHash, usize> = order.iter().enumerate().map(|(i, o)| (o.hash(), i)).collect();
        let mut anc: Vec<Bits> = Vec::with_capacity(n);
        let mut removals_of: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
        let mut demotions_of: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
        for (i, op) in order.iter().enumerate() {
            let mut mine = Bits::new(n);
            for p in &op.op().parents {
                let p = pos[p];
                mine.set(p);
                mine.union(&anc[p]);
            }
            anc.push(mine);
            if let Some(m) = removes(op.op()) {
                removals_of.entry(m).or_default().push(i);
            }
            if let OpKind::ChangeRole {
                member,
                role: Role::Member,
                ..
            } = &op.op().kind
            {
                demotions_of.entry(*member).or_default().push(i);
            }
        }
        Dag {
            group,
            order,
            anc,
            removals_of,
            demotions_of,
        }
    }

    /// Whether `x` is void under strong removal and strong demotion, given the verdicts
    /// of the last pass:
    /// - a valid removal of x's author that x does not precede voids x — unless x is
    ///   itself a removal of the member who made that removal (two facilitators removing
    ///   each other both take effect). So a removed member's operations dated before
    ///   their removal (backdated, or honestly concurrent) change nothing, except that
    ///   they may remove their own remover;
    /// - a valid demotion of x's author concurrent with x voids x if x needs a
    ///   facilitator (an add, a removal, a role change).
    fn voided(&self, x: usize, valid: &[bool]) -> bool {
        let op = self.order[x].op();
        let removed_by = |r: usize| self.order[r].op().author;
        let removals = self.removals_of.get(&op.author).into_iter().flatten();
        let target = match &op.kind {
            OpKind::Remove { member, .. } => Some(*member),
            _ => None,
        };
        let removal_voids = removals
            .filter(|&&r| r != x && valid[r] && !self.anc[r].get(x))
            .any(|&r| target != Some(removed_by(r)));
        if removal_voids {
            return true;
        }
        let needs_facilitator = matches!(
            op.kind,
            OpKind::Add { .. } | OpKind::Remove { .. } | OpKind::ChangeRole { .. }
        );
        needs_facilitator
            && self
                .demotions_of
                .get(&op.author)
                .into_iter()
                .flatten()
                .any(|&d| d != x && valid[d] && !self.anc[d].get(x) && !self.anc[x].get(d))
    }

    /// One pass: every operation judged in order against the state of its valid
    /// ancestors; `excluded` operations are invalid. Returns the verdicts and the state
    /// of all valid operations.
    fn validity(&self, excluded: &Bits) -> (Vec<bool>, MembershipState) {
        let n = self.order.len();
        let mut valid = vec![false; n];
        // The state of the valid operations before position i: S(i) whenever i's
        // ancestors are all of them (a linear history), which is the common case.
        let mut prefix = MembershipState::default();
        for i in 0..n {
            let op = self.order[i];
            let ok = !excluded.get(i)
                && if self.anc[i].count() == i {
                    authorised(&prefix, &self.group, op, i == 0)
                } else {
                    authorised(&self.state_before(i, &valid), &self.group, op, i == 0)
                };
            if ok {
                valid[i] = true;
                apply(&mut prefix, op, i);
            }
        }
        (valid, prefix)
    }

    /// `S(i)`: the valid ancestors of `i`, applied in order.
    fn state_before(&self, i: usize, valid: &[bool]) -> MembershipState {
        let mut state = MembershipState::default();
        for j in self.anc[i].iter().filter(|j| valid[*j]) {
            apply(&mut state, self.order[j], j);
        }
        state
    }

    /// Completes the final state: valid list, key holders, current epoch.
    fn finish(&self, mut state: MembershipState, valid: &[bool]) -> MembershipState {
        let valid_at: Vec<usize> = (0..self.order.len()).filter(|i| valid[*i]).collect();
        state.valid = valid_at.iter().map(|i| self.order[*i].hash()).collect();
        // Generations: the create and every rotation without earlier keys, valid or not.
        let cut_at: Vec<usize> = (0..self.order.len())
            .filter(|i| *i == 0 || matches!(self.order[*i].op().kind, OpKind::Rotate { previous: None, .. }))
            .collect();
        state.generations = cut_at.iter().map(|i| KeyId(self.order[*i].hash().0)).collect();
        state.generation_ancestors = cut_at
            .iter()
            .map(|&i| {
                let mut bits = Bits::new(cut_at.len());
                for (rank, &j) in cut_at.iter().enumerate() {
                    if self.anc[i].get(j) {
                        bits.set(rank);
                    }
                }
                bits
            })
            .collect();
        let mut starts = Vec::new();
        for &i in &valid_at {
            let op = self.order[i];
            match &op.op().kind {
                OpKind::Create { creator, .. } => {
                    starts.push(i);
                    state
                        .holders
                        .insert(KeyId(op.hash().0), BTreeSet::from([creator.member]));
                }
                OpKind::Rotate { seals, .. } => {
                    starts.push(i);
                    let recipients = seals.iter().map(|s| s.recipient).collect();
                    state.holders.insert(KeyId(op.hash().0), recipients);
                }
                OpKind::Add { keys, epoch, .. } => {
                    state.holders.entry(*epoch).or_default().insert(keys.member);
                }
                _ => {}
            }
        }
        // An add that turned out void named someone who never became a member; it still
        // sealed its epoch's key to them, so they hold it and it must be rotated away.
        for (i, op) in self.order.iter().enumerate() {
            if let OpKind::Add { keys, epoch, .. } = &op.op().kind
                && !valid[i]
            {
                if !state.ever_member(&keys.member) {
                    state.voided.insert(keys.member);
                }
                if let Some(holders) = state.holders.get_mut(epoch) {
                    holders.insert(keys.member);
                }
            }
        }
        let rotations: Vec<usize> = starts.iter().copied().filter(|i| *i != 0).collect();
        let latest: Vec<KeyId> = starts
            .iter()
            .filter(|e| !rotations.iter().any(|r| self.anc[*r].get(**e)))
            .map(|e| KeyId(self.order[*e].hash().0))
            .collect();
        let members: BTreeSet<MemberId> = state.members.keys().copied().collect();
        // (A holder who is not a member departed, or was named by an add that is void.)
        let clean = |e: &KeyId| state.holders[e] == members;
        // Clean first; else one no non-member holds (a member added concurrently lacks it,
        // but no one it must be kept from has it); else the lowest hash.
        let kept_from_departed = |e: &KeyId| state.holders[e].is_subset(&members);
        let current = latest
            .iter()
            .filter(|e| clean(e))
            .min()
            .or(latest.iter().filter(|e| kept_from_departed(e)).min())
            .or(latest.iter().min())
            .copied();
        state.needs_rotation = !members.is_empty() && !current.is_some_and(|e| clean(&e));
        state.epoch = current;
        state
    }
}

/// The deterministic causal order: Kahn's algorithm, ready operations taken by hash.
fn causal_order(ops: &BTreeMap<OpHash, SignedOp>) -> Vec<&SignedOp> {
    let mut waiting: BTreeMap<OpHash, usize> = BTreeMap::new();
    let mut children: BTreeMap<OpHash, Vec<OpHash>> = BTreeMap::new();
    for (h, op) in ops {
        waiting.insert(*h, op.op().parents.len());
        for p in &op.op().parents {
            children.entry(*p).or_default().push(*h);
        }
    }
    let mut ready: BTreeSet<OpHash> = waiting.iter().filter(|(_, n)| **n == 0).map(|(h, _)| *h).collect();
    let mut order = Vec::with_capacity(ops.len());
    while let Some(h) = ready.pop_first() {
        order.push(&ops[&h]);
        for c in children.get(&h).into_iter().flatten() {
            let n = waiting.get_mut(c).expect("every child is an op");
            *n -= 1;
            if *n == 0 {
                ready.insert(*c);
            }
        }
    }
    order
}

/// Whether the author of `op` may do it in `state` (its causal-past state).
fn authorised(state: &MembershipState, group: &GroupId, op: &SignedOp, genesis: bool) -> bool {
    let author = &op.op().author;
    let member = state.is_member(author);
    let facilitator = state.is_facilitator(author);
    match &op.op().kind {
        OpKind::Create { creator, seal } => {
            genesis && creator.member == *author && seal.recipient == *author && creator.verify(group)
        }
        OpKind::Add { keys, epoch, seal, .. } => {
            facilitator
                && state.members.len() < super::MAX_MEMBERS
                && !state.ever_member(&keys.member)
                && state.epochs.contains(epoch)
                && seal.recipient == keys.member
                && keys.verify(group)
        }
        OpKind::Remove { member: target, .. } => facilitator && target != author && state.is_member(target),
        OpKind::ChangeRole { member: target, .. } => facilitator && state.is_member(target),
        OpKind::Leave { .. } => member,
        OpKind::Rotate { seals, .. } => {
            let recipients: BTreeSet<MemberId> = seals.iter().map(|s| s.recipient).collect();
            member && recipients.len() == seals.len() && recipients.iter().eq(state.members.keys())
        }
    }
}

/// Applies the effect of a valid operation at `position`. Effects never undo a removal:
/// a departed member is never added back, whatever order concurrent operations take.
fn apply(state: &mut MembershipState, op: &SignedOp, position: usize) {
    let o = op.op();
    let join = |id: MemberId, box_public: [u8; 32], role: Role, sees_from: KeyId| MemberInfo {
        id,
        box_public,
        role,
        joined_at_ms: o.created_at_ms,
        seniority: position,
        sees_from,
    };
    match &o.kind {
        OpKind::Create { creator, .. } => {
            let first = KeyId(op.hash().0);
            state
                .members
                .insert(o.author, join(o.author, creator.box_public, Role::Facilitator, first));
            state.epochs.push(first);
        }
        OpKind::Add { keys, role, epoch, .. } => {
            if !state.ever_member(&keys.member) {
                // Added with the key of a history cut: they read from that generation on.
                // Added with any other key: they read everything.
                let sees_from = if state.cuts.contains(epoch) {
                    *epoch
                } else {
                    state.epochs.first().copied().unwrap_or(*epoch)
                };
                state
                    .members
                    .insert(keys.member, join(keys.member, keys.box_public, *role, sees_from));
            }
        }
        OpKind::Remove { member, heads } => depart(state, *member, heads),
        OpKind::Leave { heads } => depart(state, o.author, heads),
        OpKind::ChangeRole { member, role, heads } => {
            if let Some(info) = state.members.get_mut(member) {
                info.role = *role;
                if *role == Role::Member {
                    state.demoted.entry(*member).or_default().extend(heads.iter().cloned());
                }
            }
        }
        OpKind::Rotate { previous, .. } => {
            state.epochs.push(KeyId(op.hash().0));
            if previous.is_none() {
                state.cuts.push(KeyId(op.hash().0));
            }
        }
    }
    promote_if_no_facilitator(state);
}

fn depart(state: &mut MembershipState, member: MemberId, heads: &RemovalHeads) {
    state.members.remove(&member);
    state.departed.entry(member).or_default().extend(heads.iter().cloned());
}

/// DESIGN.md: if no facilitator remains, the longest-standing member becomes one.
fn promote_if_no_facilitator(state: &mut MembershipState) {
    if state.members.values().any(|m| m.role == Role::Facilitator) {
        return;
    }
    if let Some(oldest) = state.members.values_mut().min_by_key(|m| m.seniority) {
        oldest.role = Role::Facilitator;
    }
}
