//! Roles and the group document (name, agreements, settings), which only facilitators
//! write: every device must end with the same one, whatever it heard first. A change
//! there stands while its author is a facilitator; a facilitator made a member again
//! keeps what they wrote before (the demotion records it, as a removal does); and changes
//! made under a promotion that turned out void (its author removed at that moment) are
//! dropped everywhere, their author's device included. The simulation (`simulation.rs`,
//! seed 196 once role changes were in) found the last one.

use alongside_core::group::GroupSession;
use alongside_core::membership::Role;
use alongside_tests::{NOW_MS, circle, deliver, outbox, story, sync_pair, tell_ops, titles};

/// Everyone syncs with everyone until nothing changes.
fn heal(g: &mut [GroupSession]) {
    for _ in 0..3 {
        for i in 0..g.len() {
            for j in i + 1..g.len() {
                let (low, high) = g.split_at_mut(j);
                sync_pair(&mut low[i], &mut high[0]);
            }
        }
    }
}

fn agreement(s: &GroupSession) -> Option<String> {
    s.agreement().map(|a| a.text)
}

#[test]
fn agreements_set_under_a_promotion_that_turned_out_void_are_dropped_on_every_device_their_authors_too() {
    let mut g = circle(61);
    let (ana, cy) = (g[0].me(), g[2].me());
    // Ana makes Cy a facilitator while Ben, not knowing, removes Ana: the promotion is
    // void (strong removal), so Cy never was a facilitator.
    g[0].change_role(&cy, Role::Facilitator, NOW_MS).unwrap();
    g[1].remove_member(&ana, NOW_MS).unwrap();
    outbox(&mut g[0]);
    outbox(&mut g[1]);
    // Cy hears only of her promotion, and sets agreements; Dee takes them from her while
    // the promotion still looks valid to both.
    tell_ops(&mut g, 0, 2);
    assert!(g[2].membership().is_facilitator(&cy));
    g[2].set_agreement("Cy's rules", NOW_MS).unwrap();
    tell_ops(&mut g, 2, 3);
    let set = outbox(&mut g[2]);
    deliver(&mut g[3..4], &set);
    assert_eq!(agreement(&g[3]).as_deref(), Some("Cy's rules"));

    // Ben's removal of Ana reaches everyone.
    heal(&mut g[1..]);
    for s in &g[1..] {
        assert!(!s.membership().is_facilitator(&cy), "{}", s.display_name(&s.me()));
        assert_eq!(
            agreement(s),
            None,
            "{} still shows void agreements",
            s.display_name(&s.me())
        );
    }
    // Cy's device counts what of hers was undone, for the app to tell her once; nobody
    // else lost anything of their own.
    assert!(g[2].undone_changes() > 0);
    for i in [1, 3] {
        assert_eq!(g[i].undone_changes(), 0);
    }
    g[2].acknowledge_undone();
    assert_eq!(g[2].undone_changes(), 0);

    // Ben makes Cy a facilitator for real; her new agreements reach everyone (her device
    // writes under a fresh actor, so nothing forks with what it dropped).
    g[1].change_role(&cy, Role::Facilitator, NOW_MS).unwrap();
    heal(&mut g[1..]);
    g[2].set_agreement("Cy's rules, for real", NOW_MS).unwrap();
    g[2].add_story(&story("Cy after all that"), NOW_MS).unwrap();
    heal(&mut g[1..]);
    for s in &g[1..] {
        assert_eq!(agreement(s).as_deref(), Some("Cy's rules, for real"));
        assert_eq!(titles(s), ["Cy after all that"]);
    }
}

#[test]
fn a_facilitator_made_a_member_again_keeps_what_they_wrote_and_nothing_written_after() {
    let mut g = circle(62);
    let ben = g[1].me();
    g[1].set_agreement("Ben's first rules", NOW_MS).unwrap();
    heal(&mut g);
    // Ana makes Ben a member again; Ben, not knowing, changes the agreements.
    g[0].change_role(&ben, Role::Member, NOW_MS).unwrap();
    g[1].set_agreement("Ben's second rules", NOW_MS).unwrap();
    // Cy takes Ben's change before she hears of the demotion.
    let late = outbox(&mut g[1]);
    deliver(&mut g[2..3], &late);
    assert_eq!(agreement(&g[2]).as_deref(), Some("Ben's second rules"));
    heal(&mut g);
    for s in &g {
        assert!(!s.membership().is_facilitator(&ben));
        assert_eq!(
            agreement(s).as_deref(),
            Some("Ben's first rules"),
            "{} shows other agreements",
            s.display_name(&s.me())
        );
    }
    assert!(g[1].undone_changes() > 0, "Ben's device says his change was undone");
    // Knowing it now, Ben's device refuses to change them.
    assert!(g[1].set_agreement("Ben's third rules", NOW_MS).is_err());
}
