//! How long membership resolution takes as a group's log grows, against a 100-operation
//! log resolved in the same run.
//!
//! `cargo run --release -p alongside-tests --bin bench-membership`
//!
//! - **linear**: one facilitator makes every operation, one after another (how a calm
//!   group grows): resolving the whole log once.
//! - **branchy**: eight facilitators each make their share without hearing of the others,
//!   then all of it is merged (the worst shape honest devices make).
//! - **one by one**: the last 100 operations of a log arrive one at a time, each resolved
//!   on arrival (what a member pushing operations one by one costs a device).

use std::time::{Duration, Instant};

use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::membership::{MembershipLog, Role, SignedOp};
use alongside_tests::{NOW_MS, ordered_ops, rng};

/// Alice and `facilitators - 1` more facilitators, each with a session holding every
/// operation so far, plus a member whose role they toggle.
fn founders(facilitators: usize) -> (Vec<GroupSession>, alongside_core::ids::MemberId) {
    let mut alice = GroupSession::create(rng(1), "Bench", "Alice", NOW_MS).unwrap();
    let target = MembershipSecrets::generate(&mut rng(2));
    let keys = target.public_keys(&alice.id());
    alice.add_member(keys, Role::Member, NOW_MS).unwrap();
    let mut secrets = Vec::new();
    for i in 1..facilitators {
        let s = MembershipSecrets::generate(&mut rng(10 + i as u64));
        let keys = s.public_keys(&alice.id());
        alice.add_member(keys, Role::Facilitator, NOW_MS).unwrap();
        secrets.push(s);
    }
    let ops = ordered_ops(&alice);
    let mut all = vec![alice];
    for (i, s) in secrets.into_iter().enumerate() {
        all.push(GroupSession::join(rng(100 + i as u64), s, &ops).unwrap());
    }
    (all, target.member())
}

/// Each session makes `each` role changes of `target`, without hearing of the others.
fn toggle(sessions: &mut [GroupSession], target: &alongside_core::ids::MemberId, each: usize) -> Vec<SignedOp> {
    for s in sessions.iter_mut() {
        for i in 0..each {
            let role = if i % 2 == 0 { Role::Facilitator } else { Role::Member };
            s.change_role(target, role, NOW_MS + i as i64).unwrap();
        }
    }
    // As they travel: in hash order (so parents come anywhere), the create first.
    let mut ops: Vec<SignedOp> = sessions.iter().flat_map(|s| s.ops()).collect();
    ops.sort_by_key(|o| o.hash());
    ops.dedup_by_key(|o| o.hash());
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    ops
}

/// Median time to build a log from `ops` and resolve it once.
fn resolve_time(ops: &[SignedOp]) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut log = MembershipLog::new(ops[0].clone()).unwrap();
            let (added, waiting) = log.insert_all(&ops[1..]).unwrap();
            assert!(waiting.is_empty() && added == ops.len() - 1);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

fn main() {
    let (mut one, target) = founders(1);
    let base_ops = toggle(&mut one, &target, 100);
    let base = resolve_time(&base_ops);
    println!(
        "baseline: {} operations, linear, resolved in {:.2} ms",
        base_ops.len(),
        ms(base)
    );
    for n in [500, 1000, 2000, 4000] {
        let (mut one, target) = founders(1);
        let ops = toggle(&mut one, &target, n);
        let t = resolve_time(&ops);
        println!(
            "linear   {:>5} ops: {:>9.2} ms  ({:>6.1}x baseline)",
            ops.len(),
            ms(t),
            ratio(t, base)
        );
    }
    for n in [500, 1000, 2000, 4000] {
        let (mut eight, target) = founders(8);
        let ops = toggle(&mut eight, &target, n / 8);
        let t = resolve_time(&ops);
        println!(
            "branchy  {:>5} ops: {:>9.2} ms  ({:>6.1}x baseline)",
            ops.len(),
            ms(t),
            ratio(t, base)
        );
    }
    for n in [500, 1000, 2000, 4000] {
        let (mut one, target) = founders(1);
        let ops = toggle(&mut one, &target, n);
        // Arriving one at a time means arriving in causal order.
        let mut all = MembershipLog::new(ops[0].clone()).unwrap();
        all.insert_all(&ops[1..]).unwrap();
        let ops: Vec<SignedOp> = all.valid_ops().cloned().collect();
        let cut = ops.len() - 100;
        let mut log = MembershipLog::new(ops[0].clone()).unwrap();
        log.insert_all(&ops[1..cut]).unwrap();
        let start = Instant::now();
        for op in &ops[cut..] {
            log.insert(op.clone()).unwrap();
        }
        let per_op = start.elapsed() / 100;
        println!(
            "one by one at {:>5} ops: {:>7.2} ms per operation ({:>6.1}x baseline)",
            ops.len(),
            ms(per_op),
            ratio(per_op, base)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
