//! Shared helpers for Alongside's multi-member, security and fault tests and benchmarks.
//!
//! Until the sync layer lands, "other devices" are [`GroupSession`]s in the same process:
//! units move between them as bytes, exactly as they would travel.

use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::membership::Role;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub mod trace;

/// A fixed clock for tests: 2026-11-29T12:00:00Z.
pub const NOW_MS: i64 = 1_795_953_600_000;

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A group of `names.len()` members: the first creates it and adds the others as
/// members; everyone holds every membership operation and display-name unit.
pub fn group(seed: u64, names: &[&str]) -> Vec<GroupSession> {
    let mut creator = GroupSession::create(rng(seed), "Tuesday Circle", names[0], NOW_MS).expect("create group");
    let mut secrets = Vec::new();
    for (i, _) in names.iter().enumerate().skip(1) {
        let s = MembershipSecrets::generate(&mut rng(seed.wrapping_mul(1000).wrapping_add(i as u64)));
        creator
            .add_member(s.public_keys(&creator.id()), Role::Member, NOW_MS)
            .expect("add member");
        secrets.push(s);
    }
    let ops = ordered_ops(&creator);
    let mut members = vec![creator];
    for (i, s) in secrets.into_iter().enumerate() {
        let mut m = GroupSession::join(rng(seed.wrapping_mul(2000).wrapping_add(i as u64)), s, &ops).expect("join");
        m.set_display_name(names[i + 1]).expect("name");
        members.push(m);
    }
    let units: Vec<Vec<u8>> = members
        .iter_mut()
        .flat_map(|m| m.take_outbox())
        .map(|u| u.bytes().to_vec())
        .collect();
    deliver(&mut members, &units);
    members
}

/// A session's operations with the create operation first.
pub fn ordered_ops(s: &GroupSession) -> Vec<alongside_core::membership::SignedOp> {
    let mut ops = s.ops();
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    ops
}

/// Offers every unit to every member (a member's own units are duplicates to it).
pub fn deliver(members: &mut [GroupSession], units: &[Vec<u8>]) {
    for m in members.iter_mut() {
        for u in units {
            let _ = m.receive_unit(u);
        }
    }
}

/// Moves every member's outbox to every other member until nothing new happens.
pub fn sync_all(members: &mut [GroupSession]) {
    loop {
        let units: Vec<Vec<u8>> = members
            .iter_mut()
            .flat_map(|m| m.take_outbox())
            .map(|u| u.bytes().to_vec())
            .collect();
        if units.is_empty() {
            return;
        }
        deliver(members, &units);
    }
}

/// Runs the sync engine between `a` (dialer) and `b` until neither has anything to send,
/// passing frames as bytes. Returns both sides' stats and the messages each side sent.
pub fn sync_pair(
    a: &mut GroupSession,
    b: &mut GroupSession,
) -> (
    alongside_core::sync::SyncStats,
    alongside_core::sync::SyncStats,
    Vec<alongside_core::sync::Message>,
    Vec<alongside_core::sync::Message>,
) {
    use alongside_core::sync::{Message, PeerSync};
    let (mut sa, step_a) = PeerSync::start(a, b.me(), true);
    let (mut sb, step_b) = PeerSync::start(b, a.me(), false);
    let (mut to_b, mut to_a) = (step_a.frames, step_b.frames);
    let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
    let mut rounds = 0;
    while !to_a.is_empty() || !to_b.is_empty() {
        rounds += 1;
        assert!(rounds < 1000, "sync does not settle");
        for frame in std::mem::take(&mut to_b) {
            sent_a.push(Message::decode(&frame[4..]).expect("valid frame"));
            let step = sb.handle_frame(b, &frame[4..]).expect("honest frame");
            to_a.extend(step.frames);
        }
        for frame in std::mem::take(&mut to_a) {
            sent_b.push(Message::decode(&frame[4..]).expect("valid frame"));
            let step = sa.handle_frame(a, &frame[4..]).expect("honest frame");
            to_b.extend(step.frames);
        }
    }
    assert!(sa.is_caught_up() && sb.is_caught_up(), "both sides caught up");
    a.take_outbox();
    b.take_outbox();
    (sa.stats(), sb.stats(), sent_a, sent_b)
}
