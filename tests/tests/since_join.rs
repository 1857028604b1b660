//! A group that keeps history from newcomers (`group settings --history since-join`):
//! a member added then receives nothing written before they joined — not through the
//! keys they hold and not through any member's catch-up — yet sees the group's name,
//! agreements and members, and everything written afterwards (docs/MEMBERSHIP.md,
//! "History closed to newcomers").

use alongside_core::group::{GroupSession, MembershipSecrets, ReceiveError};
use alongside_core::ids::{DocId, DocKind};
use alongside_core::membership::Role;
use alongside_core::model::edits::NewMeeting;
use alongside_tests::{NOW_MS, group, ordered_ops, rng, story, sync_pair, titles};

/// Alice (facilitator) adds a newcomer with `seed`; the newcomer joins from her operations
/// and names themself.
fn add(alice: &mut GroupSession, seed: u64, name: &str) -> GroupSession {
    let secrets = MembershipSecrets::generate(&mut rng(seed));
    alice
        .add_member(secrets.public_keys(&alice.id()), Role::Member, NOW_MS)
        .unwrap();
    let mut newcomer = GroupSession::join(rng(seed + 1), secrets, &ordered_ops(alice)).unwrap();
    newcomer.set_display_name(name).unwrap();
    newcomer
}

/// Alice and Bob, with a story each, agreements Bob acknowledged and a meeting, all
/// synced; then Alice closes history to newcomers.
fn closed_circle(seed: u64) -> (GroupSession, GroupSession) {
    let mut g = group(seed, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    alice.set_agreement("What is said here stays here.", NOW_MS).unwrap();
    alice.add_story(&story("Alice before"), NOW_MS).unwrap();
    let meeting = NewMeeting {
        title: "Old meeting".into(),
        at: "2026-11-01T19:00:00Z".into(),
        place: Some("Room 2".into()),
        facilitator: None,
        agenda: String::new(),
    };
    alice.add_meeting(&meeting, NOW_MS).unwrap();
    bob.add_story(&story("Bob before"), NOW_MS).unwrap();
    sync_pair(&mut bob, &mut alice);
    bob.acknowledge_agreement(NOW_MS).unwrap();
    alice.set_history_since_join(true).unwrap();
    sync_pair(&mut bob, &mut alice);
    assert!(bob.history_since_join());
    (alice, bob)
}

#[test]
fn a_newcomer_receives_nothing_written_before_they_joined_from_anyone() {
    let (mut alice, mut bob) = closed_circle(41);
    let mut carol = add(&mut alice, 4100, "Carol");

    // Carol syncs with Alice, who wrote the old history and holds all of it.
    sync_pair(&mut carol, &mut alice);
    assert!(titles(&carol).is_empty(), "Carol got {:?}", titles(&carol));
    assert!(carol.meetings().is_empty());
    // What a newcomer needs to find their way is there: the group's name, its agreements
    // and who is who.
    assert_eq!(carol.name(), "Tuesday Circle");
    assert_eq!(carol.agreement().unwrap().text, "What is said here stays here.");
    assert_eq!(carol.display_name(&alice.me()), "Alice");
    assert!(carol.history_since_join());
    // No member document or meeting of the first generation reached her (the group
    // document, with name, agreements and settings, is one for all generations).
    assert!(carol.replica(&DocId::member_doc(&alice.me())).is_none());
    assert!(carol.replica(&DocId::member_doc(&bob.me())).is_none());
    assert!(carol.replicas().all(|r| r.id().kind != DocKind::Meeting));

    // Bob learns of the cut, settles (moves his name and endpoint key to the new
    // generation) and writes; then he syncs with Carol directly.
    sync_pair(&mut bob, &mut alice);
    bob.settle(NOW_MS).unwrap();
    bob.add_story(&story("Bob after"), NOW_MS).unwrap();
    sync_pair(&mut carol, &mut bob);
    assert_eq!(titles(&carol), ["Bob after"]);
    assert_eq!(carol.display_name(&bob.me()), "Bob");
    let bob_key = bob.transport_binding().key;
    assert_eq!(
        carol.member_for_endpoint(&bob_key),
        Some(bob.me()),
        "Carol can tell Bob's endpoint"
    );
    let acknowledged: Vec<String> = carol
        .agreement()
        .unwrap()
        .acknowledged_by
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(acknowledged, ["Bob"], "Bob's acknowledgement came along");

    // Alice writes after Carol joined: Carol reads it and can answer it.
    alice.add_story(&story("Alice after"), NOW_MS).unwrap();
    sync_pair(&mut carol, &mut alice);
    assert_eq!(titles(&carol), ["Alice after", "Bob after"]);
    let after = carol.stories().into_iter().find(|s| s.title == "Alice after").unwrap();
    carol.react(&after.id, "with you", NOW_MS).unwrap();
    sync_pair(&mut carol, &mut alice);
    let seen = alice.stories().into_iter().find(|s| s.title == "Alice after").unwrap();
    assert_eq!(seen.reactions.len(), 1);

    // The members who were there keep everything, old and new.
    sync_pair(&mut bob, &mut alice);
    for s in [&alice, &bob] {
        assert_eq!(titles(s), ["Alice after", "Alice before", "Bob after", "Bob before"]);
        assert_eq!(s.meetings().len(), 1);
        assert_eq!(s.name(), "Tuesday Circle");
        assert_eq!(s.display_name(&carol.me()), "Carol");
    }
}

#[test]
fn sharing_history_again_lets_the_next_newcomer_read_everything() {
    let (mut alice, mut bob) = closed_circle(42);
    let mut carol = add(&mut alice, 4200, "Carol");
    sync_pair(&mut carol, &mut alice);
    alice.add_story(&story("Alice after Carol"), NOW_MS).unwrap();
    alice.set_history_since_join(false).unwrap();

    let mut dan = add(&mut alice, 4210, "Dan");
    sync_pair(&mut dan, &mut alice);
    sync_pair(&mut bob, &mut alice);
    sync_pair(&mut dan, &mut bob);
    assert_eq!(
        titles(&dan),
        ["Alice after Carol", "Alice before", "Bob before"],
        "Dan joined while history was shared"
    );
    assert_eq!(dan.meetings().len(), 1);
    // Carol still has only what came after her.
    sync_pair(&mut carol, &mut alice);
    assert_eq!(titles(&carol), ["Alice after Carol"]);
}

#[test]
fn later_rotations_never_hand_a_newcomer_a_key_from_before_they_joined() {
    let (mut alice, mut bob) = closed_circle(43);
    // A unit sealed just before Carol is added, captured as a keeper or an eavesdropper
    // would hold it.
    alice.add_story(&story("Just before"), NOW_MS).unwrap();
    let before: Vec<Vec<u8>> = alice.take_outbox().iter().map(|u| u.bytes().to_vec()).collect();
    let mut carol = add(&mut alice, 4300, "Carol");
    // Then the key changes twice more: Alice rotates, and Bob leaves (Alice rotates the
    // key away from him). Each rotation carries earlier keys for whoever holds the new one.
    alice.rotate(NOW_MS).unwrap();
    sync_pair(&mut bob, &mut alice);
    bob.leave(NOW_MS).unwrap();
    sync_pair(&mut bob, &mut alice);
    alice.settle(NOW_MS).unwrap();
    assert!(!alice.membership().needs_rotation);
    sync_pair(&mut carol, &mut alice);
    assert_eq!(
        carol.membership().epoch,
        alice.membership().epoch,
        "Carol holds the current key"
    );
    for bytes in &before {
        let got = carol.receive_unit(bytes);
        assert!(matches!(got, Err(ReceiveError::NoKey)), "{got:?}");
    }
    assert!(titles(&carol).is_empty());
}

/// Alice, Bob and Carol with Bob a second facilitator, history closed, all synced.
fn two_facilitators(seed: u64) -> (GroupSession, GroupSession, GroupSession) {
    let mut g = group(seed, &["Alice", "Bob", "Carol"]);
    let mut carol = g.pop().unwrap();
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    alice.change_role(&bob.me(), Role::Facilitator, NOW_MS).unwrap();
    alice.set_agreement("First version.", NOW_MS).unwrap();
    alice.set_history_since_join(true).unwrap();
    sync_pair(&mut bob, &mut alice);
    sync_pair(&mut carol, &mut alice);
    (alice, bob, carol)
}

#[test]
fn a_cut_undone_by_a_concurrent_removal_leaves_members_syncing_and_keeps_what_was_written() {
    let (mut alice, mut bob, mut carol) = two_facilitators(44);
    // Alice adds Dan (a history cut) while Bob, concurrently, removes Alice: her cut is
    // void. Carol hears of the cut first, moves to its generation and writes there.
    let dan = MembershipSecrets::generate(&mut rng(4400));
    alice
        .add_member(dan.public_keys(&alice.id()), Role::Member, NOW_MS)
        .unwrap();
    bob.remove_member(&alice.me(), NOW_MS).unwrap();
    carol.receive_ops(&ordered_ops(&alice)).unwrap();
    carol.settle(NOW_MS).unwrap();
    carol.add_story(&story("Carol in between"), NOW_MS).unwrap();
    sync_pair(&mut carol, &mut bob);
    assert!(!carol.membership().is_member(&alice.me()));
    for s in [&bob, &carol] {
        assert!(titles(s).contains(&"Carol in between".to_string()), "{:?}", titles(s));
        assert_eq!(s.display_name(&carol.me()), "Carol");
    }
}

#[test]
fn an_agreement_set_concurrently_with_a_cut_is_kept() {
    let (mut alice, mut bob, _carol) = two_facilitators(45);
    let _dan = add(&mut alice, 4500, "Dan");
    bob.set_agreement("Second version.", NOW_MS + 1000).unwrap();
    sync_pair(&mut bob, &mut alice);
    alice.settle(NOW_MS).unwrap();
    bob.settle(NOW_MS).unwrap();
    sync_pair(&mut bob, &mut alice);
    for s in [&alice, &bob] {
        assert_eq!(s.agreement().unwrap().text, "Second version.");
        assert!(s.history_since_join());
    }
}

#[test]
fn newcomers_added_concurrently_read_what_follows_their_own_joining_and_then_everything_new() {
    let (mut alice, mut bob, _carol) = two_facilitators(46);
    // Apart, Alice adds Nia and Bob adds Noor, and each side writes.
    let mut nia = add(&mut alice, 4600, "Nia");
    alice.add_story(&story("Alice after Nia"), NOW_MS).unwrap();
    let mut noor = add(&mut bob, 4610, "Noor");
    bob.add_story(&story("Bob after Noor"), NOW_MS).unwrap();
    sync_pair(&mut bob, &mut alice);
    // The designated rotator settles the two epochs; then everyone meets everyone.
    alice.settle(NOW_MS).unwrap();
    bob.settle(NOW_MS).unwrap();
    let mut all = [alice, bob, nia, noor];
    let meet = |all: &mut [GroupSession; 4]| {
        for i in 0..4 {
            for j in i + 1..4 {
                let (a, b) = all.split_at_mut(j);
                sync_pair(&mut a[i], &mut b[0]);
            }
        }
    };
    meet(&mut all);
    for s in all.iter_mut() {
        s.settle(NOW_MS).unwrap();
    }
    meet(&mut all);
    let epoch = all[0].membership().epoch;
    assert!(
        all.iter()
            .all(|s| s.membership().epoch == epoch && !s.membership().needs_rotation)
    );
    [alice, bob, nia, noor] = all;
    // Each newcomer reads what followed their own joining, not what the other side wrote
    // concurrently (before anyone there knew of them).
    assert_eq!(titles(&nia), ["Alice after Nia"]);
    assert_eq!(titles(&noor), ["Bob after Noor"]);
    // What is written now reaches both.
    alice.add_story(&story("For everyone now"), NOW_MS).unwrap();
    let mut all = [alice, bob, nia, noor];
    meet(&mut all);
    for s in &all[2..] {
        assert!(titles(s).contains(&"For everyone now".to_string()), "{:?}", titles(s));
    }
}
