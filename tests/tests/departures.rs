//! Departures heard in any order: every device must reach the same verdict on a departed
//! member's changes and on concurrent removals, whatever it heard first. Each test here
//! is a schedule the simulation (`simulation.rs`) once found failing, made small.

use alongside_core::group::{GroupSession, ReceiveError, Received};
use alongside_core::membership::Role;
use alongside_core::model::edits::NewMeeting;
use alongside_core::sync::Message;
use alongside_tests::{Ending, Link, NOW_MS, circle, deliver, outbox, story, sync_pair, tell_ops, titles};

/// `a` and `b` of `g`, both mutable.
fn two(g: &mut [GroupSession], a: usize, b: usize) -> (&mut GroupSession, &mut GroupSession) {
    assert!(a < b);
    let (low, high) = g.split_at_mut(b);
    (&mut low[a], &mut high[0])
}

#[test]
fn what_a_member_wrote_before_leaving_reaches_everyone_though_their_last_change_left_with_them() {
    let mut g = circle(41);
    // Cy writes three stories Ben receives, and a fourth nobody receives; then leaves.
    for title in ["One", "Two", "Three"] {
        g[2].add_story(&story(title), NOW_MS).unwrap();
    }
    let shared = outbox(&mut g[2]);
    deliver(&mut g[1..2], &shared);
    g[2].add_story(&story("Four"), NOW_MS).unwrap();
    outbox(&mut g[2]);
    g[2].leave(NOW_MS).unwrap();
    // Dee hears of the leave before anything Cy wrote: the leave records Cy's last
    // change ("Four"), which will never reach her.
    tell_ops(&mut g, 2, 3);
    tell_ops(&mut g, 2, 1);
    assert!(!g[3].membership().is_member(&g[2].me()));

    // Ben passes on what he holds of Cy's: Dee takes it, and the conversation completes.
    let (ben, dee) = two(&mut g, 1, 3);
    sync_pair(ben, dee);
    assert_eq!(titles(dee), vec!["One", "Three", "Two"]);
    assert_eq!(titles(dee), titles(ben));
}

#[test]
fn two_facilitators_removing_each_other_both_go_though_one_removal_is_heard_only_as_they_are_refused() {
    let mut g = circle(42);
    let (ana, ben) = (g[0].me(), g[1].me());
    // Each removes the other before hearing of the other's removal.
    g[0].remove_member(&ben, NOW_MS).unwrap();
    g[1].remove_member(&ana, NOW_MS).unwrap();
    // Cy hears Ben's removal of Ana first: to her, Ana is gone.
    tell_ops(&mut g, 1, 2);
    assert!(!g[2].membership().is_member(&ana) && g[2].membership().is_member(&ben));

    // Ana, who does not know, dials Cy. Cy hears her operations before refusing her.
    let (ana_s, cy) = two(&mut g, 0, 2);
    let mut link = Link::open_parting(ana_s, cy);
    let ending = link.converse(ana_s, cy, |_, _| true);
    assert!(matches!(ending, Ending::Settled), "{ending:?}");
    assert!(link.b.is_parted());
    // Both removals count at Cy now; Ana learned she is gone, and got nothing else.
    assert!(!cy.membership().is_member(&ana) && !cy.membership().is_member(&ben));
    assert!(!ana_s.membership().is_member(&ana));
    assert!(
        link.sent_b.iter().all(|m| match m {
            Message::Hello { .. } => true,
            Message::Membership { grants, .. } => grants.is_empty(),
            _ => false,
        }),
        "{:?}",
        link.sent_b
    );
}

#[test]
fn a_member_whose_removal_turns_out_void_writes_on_without_forking_what_others_hold() {
    let mut g = circle(43);
    let (ana, dee) = (g[0].me(), g[3].me());
    g[3].add_story(&story("One"), NOW_MS).unwrap();
    let one = outbox(&mut g[3]);
    deliver(&mut g[..3], &one);
    // "Two" reaches only Cy.
    g[3].add_story(&story("Two"), NOW_MS).unwrap();
    let two_units = outbox(&mut g[3]);
    deliver(&mut g[2..3], &two_units);
    // Ana removes Dee (having seen only "One") while Ben removes Ana: Ana's removal is
    // void, since its author was removed at the same moment.
    g[0].remove_member(&dee, NOW_MS).unwrap();
    g[1].remove_member(&ana, NOW_MS).unwrap();
    // Dee hears Ana's removal of her first, and only then Ben's.
    tell_ops(&mut g, 0, 3);
    assert!(!g[3].membership().is_member(&dee));
    tell_ops(&mut g, 1, 3);
    assert!(g[3].membership().is_member(&dee));
    // She kept what she wrote meanwhile, so her next story follows "Two" as Cy holds it.
    assert_eq!(titles(&g[3]), vec!["One", "Two"]);
    g[3].add_story(&story("Three"), NOW_MS).unwrap();
    let three = outbox(&mut g[3]);
    // Cy hears Ben's removal first, so Ana's is void the moment it arrives and Cy keeps
    // "Two" throughout.
    tell_ops(&mut g, 1, 2);
    tell_ops(&mut g, 0, 2);
    for unit in &three {
        let got = g[2].receive_unit(unit);
        assert!(matches!(got, Ok(Received::Applied { .. })), "{got:?}");
    }
    assert_eq!(titles(&g[2]), vec!["One", "Three", "Two"]);
}

#[test]
fn someone_added_by_a_facilitator_demoted_at_that_moment_was_never_a_member_and_reads_nothing_new() {
    let mut g = circle(44);
    let ana = g[0].me();
    // Ana adds Eve while Ben, not knowing, makes Ana a member again: the add is void
    // (strong demotion), and nothing rotated the key it sealed to Eve.
    let eve_secrets = alongside_core::group::MembershipSecrets::generate(&mut alongside_tests::rng(440));
    let eve_keys = eve_secrets.public_keys(&g[0].id());
    let eve_id = eve_keys.member;
    g[0].add_member(eve_keys, Role::Member, NOW_MS).unwrap();
    let mut eve = GroupSession::join(
        alongside_tests::rng(441),
        eve_secrets,
        &alongside_tests::ordered_ops(&g[0]),
    )
    .unwrap();
    g[1].change_role(&ana, Role::Member, NOW_MS).unwrap();
    // Dee hears of the add first and takes Eve's story.
    tell_ops(&mut g, 0, 3);
    assert!(g[3].membership().is_member(&eve_id));
    eve.add_story(&story("Eve's first"), NOW_MS).unwrap();
    let meeting = NewMeeting {
        title: "Eve's meeting".into(),
        at: "2026-12-01T19:00:00+00:00".into(),
        place: None,
        facilitator: None,
        agenda: String::new(),
    };
    eve.add_meeting(&meeting, NOW_MS).unwrap();
    for unit in outbox(&mut eve) {
        assert!(matches!(g[3].receive_unit(&unit), Ok(Received::Applied { .. })));
    }
    assert!(titles(&g[3]).contains(&"Eve's first".to_string()));
    assert_eq!(g[3].meetings().len(), 1);

    // Then Ben's change: Eve was never a member. Dee drops her writing, and the key Ana's
    // add sealed to Eve is rotated away before Dee writes again.
    tell_ops(&mut g, 1, 3);
    let state = g[3].membership();
    assert!(!state.is_member(&eve_id) && state.voided.contains(&eve_id));
    assert!(state.needs_rotation, "Eve holds the epoch key her add sealed to her");
    assert!(!titles(&g[3]).contains(&"Eve's first".to_string()));
    // Her meeting's document is empty now: it is no meeting (not even an untitled one).
    assert!(g[3].meetings().is_empty(), "{:?}", g[3].meetings());
    g[3].add_story(&story("After"), NOW_MS).unwrap();
    tell_ops(&mut g, 3, 1);
    let after = outbox(&mut g[3]);
    for unit in &after {
        let got = eve.receive_unit(unit);
        assert!(
            matches!(got, Err(ReceiveError::NoKey) | Err(ReceiveError::NotAMember)),
            "{got:?}"
        );
    }
    // Ben, who never heard of Eve, reads it.
    deliver(&mut g[1..2], &after);
    assert!(titles(&g[1]).contains(&"After".to_string()));
}
