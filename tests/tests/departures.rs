//! Departures heard in any order: every device must reach the same verdict on a departed
//! member's changes and on concurrent removals, whatever it heard first. Each test here
//! is a schedule the simulation (`simulation.rs`) once found failing, made small.

use alongside_core::group::{GroupSession, Received};
use alongside_core::membership::Role;
use alongside_core::sync::Message;
use alongside_tests::{Ending, Link, NOW_MS, deliver, group, outbox, story, sync_pair, tell_ops, titles};

/// `a` and `b` of `g`, both mutable.
fn two(g: &mut [GroupSession], a: usize, b: usize) -> (&mut GroupSession, &mut GroupSession) {
    assert!(a < b);
    let (low, high) = g.split_at_mut(b);
    (&mut low[a], &mut high[0])
}

/// Ana and Ben facilitators, Cy and Dee members, everyone holding every operation.
fn circle(seed: u64) -> Vec<GroupSession> {
    let mut g = group(seed, &["Ana", "Ben", "Cy", "Dee"]);
    let ben = g[1].me();
    g[0].change_role(&ben, Role::Facilitator, NOW_MS).unwrap();
    for to in 1..4 {
        tell_ops(&mut g, 0, to);
    }
    g
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
