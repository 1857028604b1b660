//! The membership resolution rule (docs/MEMBERSHIP.md): devices that hear of concurrent
//! membership changes in any order, with duplicates, end on the same members, roles and
//! epoch key, and no removed member holds that key.

use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::group::{ReceiveError, Received};
use alongside_core::ids::{KeyId, MemberId};
use alongside_core::membership::{Role, SignedOp};
use alongside_tests::{NOW_MS, group, ordered_ops, rng, story};
use proptest::prelude::*;
use rand::seq::SliceRandom;

/// Hands `to` every operation `from` holds, shuffled and with some sent twice.
fn tell(devices: &mut [GroupSession], from: usize, to: usize, shuffle: &mut rand::rngs::StdRng) {
    let mut ops = devices[from].ops();
    let again: Vec<SignedOp> = ops.iter().step_by(3).cloned().collect();
    ops.extend(again);
    ops.shuffle(shuffle);
    devices[to]
        .receive_ops(&ops)
        .expect("an honest device's operations are accepted");
}

/// Every device hears everything from every other, then each member rotates if
/// resolution asks for it; repeated until nobody rotates. Returns the rounds it took.
fn heal(devices: &mut [GroupSession], shuffle: &mut rand::rngs::StdRng) -> usize {
    for round in 1..=8 {
        for from in 0..devices.len() {
            for to in 0..devices.len() {
                if from != to {
                    tell(devices, from, to, shuffle);
                }
            }
        }
        let mut rotated = false;
        for d in devices.iter_mut() {
            rotated |= d.rotate_if_needed(NOW_MS).expect("rotation").is_some();
        }
        if !rotated {
            return round;
        }
    }
    panic!("devices kept rotating after 8 rounds");
}

/// Asserts every device resolved the same state, every current member holds the current
/// key (the same one), and no departed member holds it.
fn check_agreement(devices: &[GroupSession]) {
    let first = devices[0].membership();
    let roles = |d: &GroupSession| -> Vec<(MemberId, Role)> {
        d.membership().members.values().map(|m| (m.id, m.role)).collect()
    };
    for d in devices {
        assert_eq!(roles(d), roles(&devices[0]), "same members and roles everywhere");
        assert_eq!(d.membership().epoch, first.epoch, "same epoch everywhere");
        assert!(!d.membership().needs_rotation, "no rotation outstanding");
    }
    let epoch: KeyId = first.epoch.expect("a current epoch");
    let mut key = None;
    for d in devices {
        let me = d.me();
        if first.members.contains_key(&me) {
            let (id, k) = d.epoch_key().expect("a current member holds the current key");
            assert_eq!(id, epoch);
            if let Some(other) = &key {
                assert!(k == *other, "one key for the epoch");
            }
            key = Some(k);
        } else if !first.members.is_empty() {
            // Departed, or a newcomer whose add turned out void. (When everyone has left,
            // nobody remains to keep anything from.)
            assert!(
                d.epoch_key().is_none_or(|(id, _)| id != epoch),
                "a non-member lacks the key"
            );
        }
    }
    if !first.members.is_empty() {
        assert!(
            first.members.values().any(|m| m.role == Role::Facilitator),
            "a group with members keeps a facilitator"
        );
    }
}

/// Alice (facilitator) and four members; Bob is made a second facilitator.
fn circle(seed: u64) -> Vec<GroupSession> {
    let mut g = group(seed, &["Alice", "Bob", "Carol", "Dan", "Erin"]);
    let bob = g[1].me();
    g[0].change_role(&bob, Role::Facilitator, NOW_MS).unwrap();
    let ops = ordered_ops(&g[0]);
    for d in g.iter_mut().skip(1) {
        d.receive_ops(&ops).unwrap();
    }
    g
}

#[test]
fn a_removal_concurrent_with_an_add_by_the_removed_facilitator_wins() {
    let mut g = circle(1);
    let (bob, erin) = (g[1].me(), g[4].me());
    let newcomer = MembershipSecrets::generate(&mut rng(100));
    // Alice removes Bob while Bob, not knowing, adds a newcomer.
    g[0].remove_member(&bob, NOW_MS).unwrap();
    let keys = newcomer.public_keys(&g[1].id());
    g[1].add_member(keys, Role::Member, NOW_MS).unwrap();
    let rounds = heal(&mut g, &mut rng(7));
    assert!(rounds <= 2);
    check_agreement(&g);
    let state = g[4].membership();
    assert!(
        !state.members.contains_key(&newcomer.member()),
        "the add by a removed facilitator is void"
    );
    assert!(!state.members.contains_key(&bob));
    assert!(state.members.contains_key(&erin));
}

#[test]
fn facilitators_removing_each_other_both_go_and_the_longest_standing_member_leads() {
    let mut g = circle(2);
    let (alice, bob, carol) = (g[0].me(), g[1].me(), g[2].me());
    g[0].remove_member(&bob, NOW_MS).unwrap();
    g[1].remove_member(&alice, NOW_MS).unwrap();
    heal(&mut g, &mut rng(8));
    check_agreement(&g);
    let state = g[2].membership();
    assert!(!state.members.contains_key(&alice) && !state.members.contains_key(&bob));
    assert_eq!(
        state.members[&carol].role,
        Role::Facilitator,
        "Carol joined first of those left"
    );
}

#[test]
fn a_removal_that_turns_out_void_takes_nothing_from_its_target() {
    // (Found by the property test.) Bob removes Alice while Alice, not knowing, removes
    // Carol and then Bob. Alice's removal of Carol is void (Alice was removed
    // concurrently); her removal of Bob stands (they removed each other). Carol stays,
    // and what she does afterwards counts.
    let mut g = circle(6);
    let (alice, bob, carol) = (g[0].me(), g[1].me(), g[2].me());
    g[1].remove_member(&alice, NOW_MS).unwrap();
    g[0].remove_member(&carol, NOW_MS).unwrap();
    g[0].remove_member(&bob, NOW_MS).unwrap();
    heal(&mut g, &mut rng(11));
    check_agreement(&g);
    let state = g[2].membership();
    assert!(state.is_member(&carol));
    assert!(!state.is_member(&alice) && !state.is_member(&bob));
    assert_eq!(state.members.len(), 3);
}

#[test]
fn a_leave_is_followed_by_a_rotation_that_excludes_the_leaver() {
    let mut g = circle(3);
    let dan = g[3].me();
    let before = g[0].membership().epoch;
    g[3].leave(NOW_MS).unwrap();
    let ops = g[3].ops();
    g[2].receive_ops(&ops).unwrap();
    let rotation = g[2].rotate_if_needed(NOW_MS).unwrap().expect("Carol rotates");
    heal(&mut g, &mut rng(9));
    check_agreement(&g);
    assert_ne!(g[0].membership().epoch, before);
    assert_eq!(g[0].membership().epoch, Some(KeyId(rotation.hash().0)));
    assert!(g[0].membership().departed.contains_key(&dan));
    // Dan's device refuses to write into the group now.
    assert!(g[3].add_story(&story("Still here"), NOW_MS).is_err());
}

#[test]
fn after_a_leave_only_the_longest_standing_facilitator_rotates_at_once_and_writers_rotate_first() {
    let mut g = circle(5);
    for d in g.iter_mut() {
        d.announce_transport().unwrap();
        d.take_outbox();
    }
    let before = g[0].membership().epoch;
    g[3].leave(NOW_MS).unwrap();
    let ops = g[3].ops();
    for d in [0, 1, 2] {
        g[d].receive_ops(&ops).unwrap();
    }
    // Bob (a facilitator, but not the longest-standing) and Carol settle: no rotation.
    g[1].settle(NOW_MS).unwrap();
    g[2].settle(NOW_MS).unwrap();
    assert_eq!(g[1].membership().epoch, before);
    assert!(g[2].membership().needs_rotation);
    // Carol writes: she rotates first, so her story is not sealed under the key Dan holds.
    g[2].add_story(&story("After Dan left"), NOW_MS).unwrap();
    let carols = g[2].membership().epoch;
    assert_ne!(carols, before);
    let units = g[2].take_outbox();
    assert!(units.iter().all(|u| Some(u.header().key_id) == carols));
    // Alice, the longest-standing facilitator, rotates when she settles.
    g[0].settle(NOW_MS).unwrap();
    assert_ne!(g[0].membership().epoch, before);
    // Both rotations exclude Dan; once everyone has both, one of them is current.
    heal(&mut g, &mut rng(10));
    check_agreement(&g);
}

#[test]
fn a_newcomer_holds_earlier_epoch_keys_unless_the_group_keeps_history_closed() {
    for since_join in [false, true] {
        let mut g = circle(4);
        g[0].set_history_since_join(since_join).unwrap();
        g[0].add_story(&story("Day one"), NOW_MS).unwrap();
        // Alice's whole document as it stood, sealed under the first epoch's key.
        let doc = g[0].take_outbox()[0].header().doc;
        let early = g[0].document_unit(&doc).unwrap();
        let erin = g[4].me();
        g[0].remove_member(&erin, NOW_MS).unwrap();
        let newcomer = MembershipSecrets::generate(&mut rng(200));
        let keys = newcomer.public_keys(&g[0].id());
        g[0].add_member(keys, Role::Member, NOW_MS).unwrap();
        let mut joined = GroupSession::join(rng(201), newcomer, &ordered_ops(&g[0])).unwrap();
        let received = joined.receive_unit(early.bytes());
        if since_join {
            assert!(matches!(received, Err(ReceiveError::NoKey)), "{received:?}");
            assert!(joined.stories().is_empty());
        } else {
            assert!(matches!(received, Ok(Received::Applied { .. })), "{received:?}");
            let titles: Vec<String> = joined.stories().into_iter().map(|s| s.title).collect();
            assert_eq!(titles, vec!["Day one".to_string()]);
        }
    }
}

/// One step of a random script.
#[derive(Debug, Clone)]
enum Step {
    /// Device `by` removes member `target` (index into devices).
    Remove { by: usize, target: usize },
    /// Device `by` gives `target` a role.
    Role {
        by: usize,
        target: usize,
        facilitator: bool,
    },
    /// Device `by` leaves.
    Leave { by: usize },
    /// Device `by` rotates.
    Rotate { by: usize },
    /// Device `by` adds a newcomer, who joins at once from `by`'s operations.
    Add { by: usize },
    /// Device `to` hears everything device `from` holds.
    Tell { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let d = 0..8usize;
    prop_oneof![
        (d.clone(), d.clone()).prop_map(|(by, target)| Step::Remove { by, target }),
        (d.clone(), d.clone(), any::<bool>()).prop_map(|(by, target, facilitator)| Step::Role {
            by,
            target,
            facilitator
        }),
        d.clone().prop_map(|by| Step::Leave { by }),
        d.clone().prop_map(|by| Step::Rotate { by }),
        d.clone().prop_map(|by| Step::Add { by }),
        (d.clone(), d.clone()).prop_map(|(from, to)| Step::Tell { from, to }),
        (d.clone(), d).prop_map(|(from, to)| Step::Tell { from, to }),
    ]
}

/// Runs a script; actions a device's own state forbids are skipped (an honest device
/// never signs them).
fn run(script: &[Step], seed: u64) -> Vec<GroupSession> {
    let mut g = circle(seed);
    let mut shuffle = rng(seed ^ 0x5eed);
    let mut newcomers = 0u64;
    for s in script {
        let n = g.len();
        match *s {
            Step::Remove { by, target } => {
                let target = g[target % n].me();
                let _ = g[by % n].remove_member(&target, NOW_MS);
            }
            Step::Role {
                by,
                target,
                facilitator,
            } => {
                let target = g[target % n].me();
                let role = if facilitator { Role::Facilitator } else { Role::Member };
                let _ = g[by % n].change_role(&target, role, NOW_MS);
            }
            Step::Leave { by } => {
                let _ = g[by % n].leave(NOW_MS);
            }
            Step::Rotate { by } => {
                let _ = g[by % n].rotate(NOW_MS);
            }
            Step::Add { by } if newcomers < 3 => {
                newcomers += 1;
                let secrets = MembershipSecrets::generate(&mut rng(seed * 100 + newcomers));
                let by = by % n;
                let keys = secrets.public_keys(&g[by].id());
                if g[by].add_member(keys, Role::Member, NOW_MS).is_ok() {
                    let joined = GroupSession::join(rng(seed * 100 + 50 + newcomers), secrets, &ordered_ops(&g[by]))
                        .expect("a newcomer joins from the adder's operations");
                    g.push(joined);
                }
            }
            Step::Add { .. } => {}
            Step::Tell { from, to } => {
                if from % n != to % n {
                    tell(&mut g, from % n, to % n, &mut shuffle);
                }
            }
        }
    }
    heal(&mut g, &mut shuffle);
    g
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x4E4B_0004),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn concurrent_membership_changes_converge(script in prop::collection::vec(step(), 1..24), seed in 1u64..1_000_000) {
        let g = run(&script, seed);
        check_agreement(&g);
    }
}
