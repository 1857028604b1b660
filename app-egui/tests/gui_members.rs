//! Membership from the desktop app: a facilitator changes roles and removes a member
//! (after being told what removal means), a member leaves; the other app sees each change
//! over loopback, and a removed member's device is refused.

mod support;

use egui_kittest::kittest::{NodeT as _, Queryable};
use support::*;

#[test]
fn a_facilitator_changes_a_role_then_removes_a_member_who_is_then_refused() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    click(&mut alex, "Members");
    assert!(
        shows(&alex, "Facilitators invite new members."),
        "a member is not offered invitations"
    );
    assert!(!shows(&alex, "Remove Sam"), "a member is not offered removals");

    click(&mut sam, "Make Alex a facilitator");
    wait_until(&mut sam, "the new role", |a| shows(a, "Alex · Facilitator"));
    assert!(shows(&sam, "they can invite, remove members and change roles"));
    wait_until(&mut alex, "the new role on Alex's device", |a| {
        shows(a, "Alex (you) · Facilitator")
    });
    click(&mut sam, "Make Alex a member");
    wait_until(&mut sam, "the role back", |a| shows(a, "Alex · Member"));

    click(&mut sam, "Remove Alex…");
    assert!(
        shows(
            &sam,
            "Removing Alex means they will not see anything written from now on"
        ),
        "what removal means is said before it happens"
    );
    assert!(shows(&sam, "Alex · Member"), "nothing happened yet");
    click(&mut sam, "Remove Alex");
    wait_until(&mut sam, "the removal", |a| shows(a, "Alex is no longer a member"));
    assert!(!shows(&sam, "Alex · Member"), "Alex is gone from Sam's list");

    click(&mut sam, "Stories");
    share_story(&mut sam, "After", "Written after Alex was removed.");
    click(&mut alex, "Sync now");
    wait_until(&mut alex, "the refusal", |a| shows(a, "no longer accept this device"));
    click(&mut alex, "Stories");
    assert!(
        !shows(&alex, "Written after Alex was removed."),
        "nothing written after the removal reaches Alex"
    );
}

#[test]
fn agreements_set_after_ones_facilitator_role_ended_are_undone_and_the_app_says_so_once() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    click(&mut alex, "Members");
    click(&mut sam, "Make Alex a facilitator");
    wait_until(&mut alex, "the new role on Alex's device", |a| {
        shows(a, "Alex (you) · Facilitator")
    });
    // Alex's computer is off when Sam makes her a member again; not knowing, she sets
    // new agreements on it.
    drop(alex);
    click(&mut sam, "Make Alex a member");
    wait_until(&mut sam, "the role back", |a| shows(a, "Alex · Member"));
    {
        use alongside_core::vault::Vault;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut vault = Vault::unlock(dir_alex.path(), PASSPHRASE.as_bytes()).unwrap();
        let group = vault.group_ids().unwrap()[0];
        vault.edit(&group, |s| s.set_agreement("Alex's rules", now_ms)).unwrap();
    }
    let notice = "Some of your changes to the group's name, agreements or settings were undone";
    let mut alex = unlock_profile(dir_alex.path());
    click(&mut alex, "Tuesday Circle");
    wait_until(&mut alex, "the word that her change was undone", |a| {
        shows(a, notice) && !shows(a, "Still opening")
    });
    click(&mut alex, "Agreements");
    assert!(!shows(&alex, "Alex's rules"), "the undone agreements are gone here too");
    click(&mut sam, "Agreements");
    assert!(!shows(&sam, "Alex's rules"));
    assert!(!shows(&sam, "were undone"), "Sam lost nothing of his own");

    click(&mut alex, "I understand");
    wait_until(&mut alex, "the notice gone", |a| !shows(a, notice));
    drop(alex);
    let mut alex = unlock_profile(dir_alex.path());
    click(&mut alex, "Tuesday Circle");
    wait_until(&mut alex, "the group loaded", |a| !shows(a, "Still opening"));
    assert!(!shows(&alex, notice), "it is said once");
}

#[test]
fn leaving_says_what_it_means_and_the_group_sees_the_member_go() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    assert!(shows(&sam, "Alex · Member"));
    click(&mut alex, "Members");
    click(&mut alex, "Leave this group…");
    assert!(
        shows(&alex, "What you already have stays here"),
        "leaving is explained first"
    );
    click(&mut alex, "Leave Tuesday Circle");
    wait_until(&mut alex, "having left", |a| shows(a, "You have left Tuesday Circle"));
    assert!(shows(&alex, "Your groups"), "Alex is back at the list of groups");
    wait_until(&mut sam, "Alex gone from Sam's list", |a| !shows(a, "Alex · Member"));
}

#[test]
fn open_invitations_are_listed_can_be_withdrawn_and_a_removal_offers_to_withdraw_them() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, _alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    // The ticket Alex used no longer shows; a new one does, and can be withdrawn.
    click(&mut sam, "Members");
    assert!(
        !shows(&sam, "Invitations that still work"),
        "a used ticket is not offered"
    );
    click(&mut sam, "Create invitation");
    wait_until(&mut sam, "the new invitation listed", |a| {
        shows(a, "Invitations that still work")
    });
    let withdraw = sam
        .query_all_by_label_contains("Withdraw ticket")
        .next()
        .and_then(|n| n.accesskit_node().label())
        .expect("a withdraw button");
    click(&mut sam, &withdraw);
    wait_until(&mut sam, "the withdrawal", |a| shows(a, "that ticket no longer works"));
    assert!(!shows(&sam, "Invitations that still work"));

    // Another one, then Alex is removed: the removal offers to withdraw it, ticked.
    click(&mut sam, "Create invitation");
    wait_until(&mut sam, "the new invitation listed", |a| {
        shows(a, "Invitations that still work")
    });
    click(&mut sam, "Remove Alex…");
    assert!(shows(&sam, "Also withdraw the open invitation"));
    click(&mut sam, "Remove Alex");
    wait_until(&mut sam, "the removal", |a| {
        shows(a, "The open invitation was withdrawn too")
    });
    assert!(!shows(&sam, "Invitations that still work"));
}
