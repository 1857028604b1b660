//! What removal promises (docs/SECURITY.md): a removed member reads nothing sealed after
//! a device applied the removal, and nothing they write afterwards is accepted, unless a
//! current member had already built on it.

use alongside_core::crypto::SymmetricKey;
use alongside_core::group::{GroupSession, ReceiveError, Received};
use alongside_core::ids::KeyId;
use alongside_core::model::edits::NewMeeting;
use alongside_core::replica::Rejection;
use alongside_core::unit::SealedUnit;
use alongside_tests::{NOW_MS, deliver, group, ordered_ops, outbox, story, tell_ops};

/// Alice (facilitator), Bob, Carol and Dan, each holding everything written so far.
fn circle(seed: u64) -> Vec<GroupSession> {
    group(seed, &["Alice", "Bob", "Carol", "Dan"])
}

#[test]
fn a_removed_member_decrypts_nothing_written_after_the_removal_with_any_key_it_held() {
    let mut g = circle(31);
    let carol = g[2].me();
    let mut held: Vec<(KeyId, SymmetricKey)> = vec![g[2].epoch_key().unwrap()];
    // A rotation while Carol is still a member: she holds that key too.
    g[0].rotate(NOW_MS).unwrap();
    tell_ops(&mut g, 0, 2);
    held.push(g[2].epoch_key().unwrap());
    assert_ne!(held[0].0, held[1].0);
    // (What Alice wrote while Carol was a member, her new endpoint key included, Bob and
    // Carol have.)
    tell_ops(&mut g, 0, 1);
    let earlier = outbox(&mut g[0]);
    deliver(&mut g[1..3], &earlier);

    g[0].remove_member(&carol, NOW_MS).unwrap();
    g[0].add_story(&story("After Carol left"), NOW_MS).unwrap();
    let after = outbox(&mut g[0]);
    // Carol's device captures everything: the operations and every unit.
    tell_ops(&mut g, 0, 2);
    for bytes in &after {
        let got = g[2].receive_unit(bytes);
        assert!(matches!(got, Err(ReceiveError::NoKey)), "{got:?}");
        let unit = SealedUnit::decode(bytes).unwrap();
        for (_, key) in &held {
            assert!(unit.open(key).is_err(), "no key Carol ever held opens it");
        }
    }
    assert!(g[2].stories().iter().all(|s| s.title != "After Carol left"));
    // Bob reads it.
    tell_ops(&mut g, 0, 1);
    deliver(&mut g[1..2], &after);
    assert!(g[1].stories().iter().any(|s| s.title == "After Carol left"));
}

#[test]
fn a_removed_members_change_written_after_the_removal_is_rejected_even_under_an_old_key() {
    let mut g = circle(32);
    let carol = g[2].me();
    // Carol writes one story Alice sees before removing her, then another she writes
    // without knowing she was removed (sealed under the key she still holds).
    g[2].add_story(&story("Before"), NOW_MS).unwrap();
    let before = outbox(&mut g[2]);
    deliver(&mut g[0..1], &before);
    g[0].remove_member(&carol, NOW_MS).unwrap();
    g[2].add_story(&story("After"), NOW_MS).unwrap();
    let late = outbox(&mut g[2]);

    // Bob hears of the removal first, then gets both of Carol's units.
    tell_ops(&mut g, 0, 1);
    assert!(matches!(g[1].receive_unit(&before[0]), Ok(Received::Applied { .. })));
    let refused = g[1].receive_unit(&late[0]);
    assert!(
        matches!(refused, Err(ReceiveError::Rejected(Rejection::AfterRemoval))),
        "{refused:?}"
    );
    // Alice, who removed her, refuses it too.
    assert!(matches!(
        g[0].receive_unit(&late[0]),
        Err(ReceiveError::Rejected(Rejection::AfterRemoval))
    ));
    let titles: Vec<String> = g[1].stories().into_iter().map(|s| s.title).collect();
    assert_eq!(titles, vec!["Before".to_string()]);
}

#[test]
fn a_removed_members_change_a_current_member_built_on_is_kept() {
    let mut g = circle(33);
    let carol = g[2].me();
    let meeting = NewMeeting {
        title: "Tuesday".into(),
        at: "2026-12-01T19:00:00Z".into(),
        place: None,
        facilitator: None,
        agenda: "Check-ins".into(),
    };
    let id = g[0].add_meeting(&meeting, NOW_MS).unwrap().to_hex();
    let units = outbox(&mut g[0]);
    deliver(&mut g, &units);
    let doc = SealedUnit::decode(&units[0]).unwrap().header().doc;

    // Alice removes Carol. Carol, not knowing, types into the notes; Dan, not knowing
    // either, gets her change and writes below it.
    g[0].remove_member(&carol, NOW_MS).unwrap();
    g[2].append_meeting_notes(&id, "Carol: glad to be here. ").unwrap();
    let carols = outbox(&mut g[2]);
    deliver(&mut g[3..4], &carols);
    g[3].append_meeting_notes(&id, "Dan: me too.").unwrap();
    outbox(&mut g[3]);

    // Bob knows of the removal. Carol's change alone is refused; Dan's catch-up, which
    // carries Carol's change with his change built on it, is accepted whole.
    tell_ops(&mut g, 0, 1);
    assert!(matches!(
        g[1].receive_unit(&carols[0]),
        Err(ReceiveError::Rejected(Rejection::AfterRemoval))
    ));
    let have = g[1].replica(&doc).unwrap().heads();
    for unit in g[3].catch_up_units(&doc, &have, 1_000_000) {
        assert!(matches!(g[1].receive_unit(unit.bytes()), Ok(Received::Applied { .. })));
    }
    let notes = g[1]
        .meetings()
        .into_iter()
        .find(|m| m.title == "Tuesday")
        .unwrap()
        .notes;
    assert!(
        notes.contains("Carol: glad to be here.") && notes.contains("Dan: me too."),
        "{notes}"
    );
}

#[test]
fn a_device_that_took_a_late_change_before_hearing_of_the_removal_drops_it() {
    let mut g = circle(34);
    let carol = g[2].me();
    g[2].add_story(&story("Before"), NOW_MS).unwrap();
    let before = outbox(&mut g[2]);
    deliver(&mut g, &before);
    g[0].remove_member(&carol, NOW_MS).unwrap();
    // Carol writes on; Bob, who has not heard of the removal yet, takes it.
    g[2].add_story(&story("After"), NOW_MS).unwrap();
    let late = outbox(&mut g[2]);
    assert!(matches!(g[1].receive_unit(&late[0]), Ok(Received::Applied { .. })));
    assert_eq!(g[1].stories().len(), 2);
    // Once Bob hears of the removal he drops it, and holds what Alice holds.
    tell_ops(&mut g, 0, 1);
    let titles: Vec<String> = g[1].stories().into_iter().map(|s| s.title).collect();
    assert_eq!(titles, vec!["Before".to_string()]);
    let doc = SealedUnit::decode(&before[0]).unwrap().header().doc;
    assert_eq!(g[1].replica(&doc).unwrap().heads(), g[0].replica(&doc).unwrap().heads());
    assert!(g[1].take_dirty().contains(&doc), "the pruned document is saved again");
    // And it refuses the change if it comes again.
    assert!(matches!(
        g[1].receive_unit(&late[0]),
        Err(ReceiveError::Rejected(Rejection::AfterRemoval))
    ));
}

#[test]
fn what_is_left_of_a_removed_members_document_after_dropping_late_changes_can_still_be_passed_on() {
    // Four members who have exchanged only membership operations, no content.
    let mut alice = GroupSession::create(alongside_tests::rng(35), "Circle", "Alice", NOW_MS).unwrap();
    let secrets: Vec<_> = (0..3)
        .map(|i| alongside_core::group::MembershipSecrets::generate(&mut alongside_tests::rng(350 + i)))
        .collect();
    for s in &secrets {
        let keys = s.public_keys(&alice.id());
        alice
            .add_member(keys, alongside_core::membership::Role::Member, NOW_MS)
            .unwrap();
    }
    let ops = ordered_ops(&alice);
    let mut g = vec![alice];
    for (i, s) in secrets.into_iter().enumerate() {
        g.push(GroupSession::join(alongside_tests::rng(360 + i as u64), s, &ops).unwrap());
    }
    let carol = g[2].me();
    g[2].add_story(&story("Before"), NOW_MS).unwrap();
    let before = outbox(&mut g[2]);
    let doc = SealedUnit::decode(&before[0]).unwrap().header().doc;
    deliver(&mut g[0..1], &before);
    g[0].remove_member(&carol, NOW_MS).unwrap();
    g[2].add_story(&story("After"), NOW_MS).unwrap();
    outbox(&mut g[2]);
    // Carol's whole document reaches Bob (neither knows of the removal) in one unit,
    // signed only at its latest change.
    for unit in g[2].catch_up_units(&doc, &[], 1_000_000) {
        assert!(matches!(g[1].receive_unit(unit.bytes()), Ok(Received::Applied { .. })));
    }
    // Bob hears of the removal and drops "After"; what is left is vouched for by the
    // removal, so Dan takes it from Bob.
    tell_ops(&mut g, 0, 1);
    tell_ops(&mut g, 0, 3);
    for unit in g[1].catch_up_units(&doc, &[], 1_000_000) {
        let got = g[3].receive_unit(unit.bytes());
        assert!(matches!(got, Ok(Received::Applied { .. })), "{got:?}");
    }
    let titles: Vec<String> = g[3].stories().into_iter().map(|s| s.title).collect();
    assert_eq!(titles, vec!["Before".to_string()]);
    assert_eq!(g[3].replica(&doc).unwrap().heads(), g[0].replica(&doc).unwrap().heads());
}

#[test]
fn a_goal_shared_with_a_member_who_is_then_removed_is_sealed_under_a_key_they_never_held() {
    use alongside_core::model::edits::{CheckInKind, NewCheckIn};
    let mut g = circle(36);
    let (bob, carol) = (g[1].me(), g[2].me());
    // Alice shares a goal with Bob and Carol; both read it.
    let goal = g[0].add_goal("Ninety meetings", None, &[bob, carol], NOW_MS).unwrap();
    let grants = g[0].grants();
    for m in [1, 2] {
        for grant in &grants {
            g[m].receive_grant(grant.clone()).unwrap();
        }
    }
    let units = outbox(&mut g[0]);
    deliver(&mut g[1..3], &units);
    assert_eq!(
        g[2].goals(NOW_MS).len(),
        1,
        "Carol reads the goal while she is in its audience"
    );
    let old_key = g[2].grants()[0].key_id();
    let goal = goal.to_string();

    // Alice removes Carol, then checks in on the goal.
    g[0].remove_member(&carol, NOW_MS).unwrap();
    let checkin = NewCheckIn {
        date: "2026-11-29".into(),
        kind: CheckInKind::Progress,
        mood: Some(4),
        craving: Some(2),
        halt: vec![],
        note: "Day 40.".into(),
    };
    g[0].check_in(&goal, &checkin, NOW_MS).unwrap();
    let after: Vec<Vec<u8>> = outbox(&mut g[0]);
    let sealed: Vec<SealedUnit> = after.iter().map(|u| SealedUnit::decode(u).unwrap()).collect();
    let for_goal: Vec<&SealedUnit> = sealed
        .iter()
        .filter(|u| u.header().doc.kind == alongside_core::ids::DocKind::Audience)
        .collect();
    assert!(!for_goal.is_empty());
    assert!(
        for_goal.iter().all(|u| u.header().key_id != old_key),
        "nothing is sealed under the key Carol held"
    );
    // Carol, holding every key she ever had, opens none of it.
    for u in &for_goal {
        assert!(matches!(g[2].receive_unit(u.bytes()), Err(ReceiveError::NoKey)));
    }
    // Bob gets the renewed grant (Carol is not in it) and reads the check-in.
    let renewed: Vec<_> = g[0]
        .grants_for(&bob)
        .into_iter()
        .filter(|gr| !gr.members.contains(&carol))
        .collect();
    assert_eq!(renewed.len(), 1, "one renewed grant, without Carol");
    assert!(g[0].grants_for(&carol).is_empty(), "nothing more is granted to Carol");
    g[1].receive_grant(renewed[0].clone()).unwrap();
    for u in &after {
        let _ = g[1].receive_unit(u);
    }
    let goals = g[1].goals(NOW_MS);
    assert_eq!(goals[0].checkins.len(), 1, "Bob reads Alice's check-in");
    assert!(
        matches!(g[1].receive_unit(&units[0]), Ok(Received::Duplicate)),
        "and still holds what came before"
    );
    // Alice's device keeps both grants and both keys across a restart, and renews no more.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice");
    let mut vault =
        alongside_core::vault::Vault::init(&path, "alice", b"pw", alongside_core::crypto::PassphraseKdf::TEST).unwrap();
    let gid = vault.adopt(g.remove(0)).unwrap();
    drop(vault);
    let mut vault = alongside_core::vault::Vault::unlock(&path, b"pw").unwrap();
    assert_eq!(vault.session(&gid).unwrap().grants().len(), 2);
    vault
        .edit(&gid, |s| s.check_in(&goal, &checkin, NOW_MS).map(|_| ()))
        .unwrap();
    assert_eq!(vault.session(&gid).unwrap().grants().len(), 2, "one renewal is enough");
}
