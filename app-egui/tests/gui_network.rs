//! The desktop app on the network: invitations, joining with a ticket, two apps on
//! loopback iroh seeing each other's stories, and what the home says when nobody is
//! reachable. Each app runs its real node (relays, address lookup and local-network
//! discovery off) on a profile in its own temporary directory.

mod support;

use egui_kittest::kittest::Queryable;
use support::*;

#[test]
fn two_apps_joined_by_an_invitation_over_loopback_see_each_others_stories() {
    let (dir_sam, dir_alex, dir_kim) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sam_story = "Thank you all for showing up on a cold night.";
    let alex_story = "First week back at work went better than I feared.";

    let mut sam = sam_at_group_home(dir_sam.path());
    share_story(&mut sam, "Cold night", sam_story);
    let ticket = invite_from_members_tab(&mut sam);
    assert!(ticket.starts_with("alongside1"), "a ticket is shown: {ticket:?}");
    assert!(shows(&sam, "like a key"), "the inviter is told a ticket is like a key");
    assert!(shows(&sam, "works once, for the next 1 day"), "its expiry is shown");
    assert!(sam.query_by_label("Copy ticket").is_some());
    assert!(
        sam.query_by_label("QR code of the invitation ticket").is_some(),
        "the ticket is offered as a QR code to scan"
    );

    let mut alex = join_with(dir_alex.path(), &ticket, "Alex");
    assert!(
        shows(&alex, "like a key to the group's history"),
        "the joiner is warned what a ticket is"
    );
    wait_until(&mut alex, "joining", |a| shows(a, "You joined Tuesday Circle"));
    click(&mut alex, "Tuesday Circle");
    wait_until(&mut alex, "Sam's story on Alex's device", |a| shows(a, sam_story));
    wait_until(&mut alex, "the connection to Sam", |a| shows(a, "Connected now: Sam"));
    share_story(&mut alex, "Back at work", alex_story);

    click(&mut sam, "Stories");
    wait_until(&mut sam, "Alex's story on Sam's device", |a| shows(a, alex_story));
    wait_until(&mut sam, "the connection to Alex", |a| shows(a, "Connected now: Alex"));
    click(&mut sam, "Members");
    assert!(shows(&sam, "Alex · Member"), "Sam's members tab lists Alex by name");

    // Away from the group, what others write is counted on the list until it is opened.
    click(&mut sam, "Back to your groups");
    share_story(&mut alex, "Later", "A second story while Sam looks at the list.");
    wait_until(&mut sam, "the count of new things", |a| {
        shows(a, "1 new story or reach-out since you last looked")
    });
    click(&mut sam, "Tuesday Circle");
    wait_until(&mut sam, "the new story", |a| {
        shows(a, "A second story while Sam looks")
    });
    click(&mut sam, "Back to your groups");
    wait_until(&mut sam, "the count gone", |a| !shows(a, "since you last looked"));

    // The ticket worked once: someone else who got hold of it is refused.
    let mut kim = join_with(dir_kim.path(), &ticket, "Kim");
    wait_until(&mut kim, "the refusal", |a| shows(a, "Could not join"));
    assert!(shows(&kim, "already used"), "Kim is told the ticket was used");
    assert!(!shows(&kim, "Tuesday Circle"), "Kim has no group");
}

#[test]
fn a_ticket_that_is_not_whole_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = join_with(dir.path(), "alongside1NOTAWHOLETICKET", "Alex");
    wait_until(&mut app, "the refusal", |a| shows(a, "not a whole invitation ticket"));
    assert!(shows(&app, "You are not in a group yet"), "nothing was joined");
}

#[test]
fn alone_the_home_says_it_is_offline_counts_what_waits_and_sync_now_says_nobody_was_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_at_group_home(dir.path());
    assert!(shows(&sam, "Offline: nobody in this group is reachable right now"));
    assert!(
        !shows(&sam, "waiting to be sent"),
        "nothing waits before anything is written"
    );
    share_story(&mut sam, "A quiet evening", "Reading instead of going out.");
    assert!(shows(&sam, "1 change waiting to be sent"));

    click(&mut sam, "Sync now");
    wait_until(&mut sam, "the end of the sync", |a| {
        shows(a, "Could not reach anyone in Tuesday Circle right now")
    });
    assert!(shows(&sam, "saved here"), "the message says nothing is lost");
    assert!(shows(&sam, "1 change waiting to be sent"), "it still waits");

    // Closed and opened again, the window still knows it waits.
    drop(sam);
    let mut sam = unlock_profile(dir.path());
    click(&mut sam, "Tuesday Circle");
    wait_until(&mut sam, "the group loaded", |a| {
        shows(a, "1 change waiting to be sent") && !shows(a, "Still opening")
    });
}

#[test]
fn meeting_mode_is_one_switch_and_says_when_this_device_keeps_discovery_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_at_group_home(dir.path());
    click(&mut sam, "Meeting mode: find members on this Wi-Fi");
    // These apps run with local-network discovery off for the whole device.
    wait_until(&mut sam, "meeting mode on", |a| {
        shows(a, "switched off for this device as a whole")
    });
    click(&mut sam, "Meeting mode: find members on this Wi-Fi");
    wait_until(&mut sam, "meeting mode off", |a| {
        !shows(a, "switched off for this device as a whole")
    });
}

#[test]
fn meeting_mode_says_until_when_it_is_on_and_shows_off_once_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_at_group_home(dir.path());
    click(&mut sam, "Meeting mode: find members on this Wi-Fi");
    wait_until(&mut sam, "meeting mode on", |a| shows(a, "Meeting mode is on until"));
    assert!(shows(&sam, "(in 3 hours)"), "it says how long it stays on");
    assert!(shows(&sam, "switches itself off"), "and that it ends by itself");
    assert!(
        sam.query_by_label("Keep meeting mode on for 3 hours from now")
            .is_some(),
        "it can be renewed"
    );

    // Switched on for a few seconds only (as `alongside meeting-mode on --for 6s` does).
    drop(sam);
    let mut vault = alongside_core::vault::Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
    let group = vault.group_ids().unwrap()[0];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    vault.set_meeting_mode(&group, now, Some(6_000)).unwrap();
    drop(vault);
    let mut sam = unlock_profile(dir.path());
    click(&mut sam, "Tuesday Circle");
    wait_until(&mut sam, "meeting mode shown on", |a| {
        shows(a, "Meeting mode is on until")
    });
    // No input from here: the window turns it off by itself when its time is up.
    wait_until(&mut sam, "meeting mode shown off", |a| !shows(a, "Meeting mode is on"));
    assert!(
        sam.query_by_label("Keep meeting mode on for 3 hours from now")
            .is_none(),
        "nothing offers to keep on what is off"
    );
    // Switching it on again works as before.
    click(&mut sam, "Meeting mode: find members on this Wi-Fi");
    wait_until(&mut sam, "meeting mode on again", |a| {
        shows(a, "Meeting mode is on until")
    });
}

#[test]
fn support_and_replies_reach_the_author_and_deleting_says_history_keeps_a_copy() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    share_story(&mut alex, "Day ten", "Ten days and the mornings are easier.");
    assert!(!shows(&alex, "Send support for"), "nobody sends support to themselves");
    click(&mut sam, "Stories");
    wait_until(&mut sam, "Alex's story", |a| {
        shows(a, "Ten days and the mornings are easier.")
    });

    click(&mut sam, "Send support for “Day ten”");
    wait_until(&mut sam, "the support saved", |a| shows(a, "Sam sent support."));
    fill(&mut sam, "Reply to “Day ten”", "Proud of you.");
    click(&mut sam, "Send reply to “Day ten”");
    wait_until(&mut sam, "the reply saved", |a| shows(a, "Sam: Proud of you."));
    wait_until(&mut alex, "support and reply on Alex's device", |a| {
        shows(a, "Sam sent support.") && shows(a, "Sam: Proud of you.")
    });

    click(&mut alex, "Delete “Day ten”…");
    assert!(
        shows(&alex, "It cannot take it back from history"),
        "said before deleting"
    );
    click(&mut alex, "Delete it");
    wait_until(&mut alex, "the deletion", |a| {
        shows(a, "The story is deleted from what the group sees")
    });
    wait_until(&mut sam, "the story gone from Sam's screen", |a| {
        !shows(a, "Ten days and the mornings are easier.")
    });
}
