//! Settings in the desktop app: locking itself when idle, changing the passphrase, taking
//! a break, muting a member, one's name in a group, exporting, and how the window looks.

mod support;

use support::*;

/// Opens the settings screen and waits for what the backend knows.
fn open_settings(app: &mut App) {
    click(app, "Settings");
    wait_until(app, "the settings", |a| shows(a, "Taking a break"));
}

#[test]
fn the_window_locks_itself_after_the_chosen_time_without_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_with_a_group(dir.path());
    open_settings(&mut sam);
    click(&mut sam, "1 minute");
    click(&mut sam, "Close settings");
    // Each step is a quarter of a second of the window's time, with nothing touched.
    for _ in 0..250 {
        sam.step();
    }
    wait_until(&mut sam, "the lock", |a| {
        shows(a, "Alongside locked itself after 1 minute")
    });
    assert!(!shows(&sam, "Tuesday Circle"), "nothing of the profile is on screen");
}

#[test]
fn changing_the_passphrase_needs_the_current_one_and_then_only_the_new_one_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_with_a_group(dir.path());
    open_settings(&mut sam);
    let new = "harbour willow compass";
    fill(&mut sam, "Current passphrase", "not my passphrase");
    fill(&mut sam, "New passphrase", new);
    fill(&mut sam, "New passphrase again", new);
    click(&mut sam, "Change passphrase");
    wait_until(&mut sam, "the refusal", |a| {
        shows(a, "That is not your current passphrase")
    });

    fill(&mut sam, "Current passphrase", PASSPHRASE);
    fill(&mut sam, "New passphrase", new);
    fill(&mut sam, "New passphrase again", new);
    click(&mut sam, "Change passphrase");
    wait_until(&mut sam, "the change", |a| shows(a, "Your passphrase is changed"));

    click(&mut sam, "Lock");
    wait_until(&mut sam, "the unlock screen", |a| shows(a, "Alongside is locked"));
    fill(&mut sam, "Passphrase", PASSPHRASE);
    click(&mut sam, "Unlock");
    wait_until(&mut sam, "the refusal", |a| shows(a, "did not open your profile"));
    fill(&mut sam, "Passphrase", new);
    click(&mut sam, "Unlock");
    wait_until(&mut sam, "the groups", |a| shows(a, "Your groups"));
}

#[test]
fn a_break_hides_stories_with_warnings_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_at_group_home(dir.path());
    click(&mut sam, "Write a story");
    fill(&mut sam, "Title", "A hard night");
    fill(&mut sam, "Your story", "The cravings came back after the funeral.");
    click(&mut sam, "Cravings");
    click(&mut sam, "Share story");
    wait_until(&mut sam, "the saved story", |a| {
        shows(a, "This story mentions: Cravings.")
    });

    // The break starts from the list of groups, the group closed (its page kept for the
    // next unlock, story and all).
    click(&mut sam, "Back to your groups");
    wait_until(&mut sam, "the groups screen", |a| shows(a, "Your groups"));
    open_settings(&mut sam);
    fill(&mut sam, "Until (a date like 2026-12-15)", "2099-12-31");
    click(&mut sam, "Start my break");
    wait_until(&mut sam, "the break", |a| {
        shows(a, "You are taking a break until 2099-12-31.")
    });
    // The kept page was read before the break: it is forgotten, so the next unlock cannot
    // show the resting story even for a moment.
    drop(sam);
    {
        use alongside_core::vault::{ShownLast, Vault};
        let vault = Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
        let group = vault.group_ids().unwrap()[0];
        let kept = vault.shown_last(&group, ShownLast::Page).unwrap().unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&kept).contains("after the funeral"),
            "a page kept from before the break would show the resting story"
        );
    }
    let mut sam = unlock_profile(dir.path());
    click(&mut sam, "Tuesday Circle");
    wait_until(&mut sam, "the stories resting", |a| {
        shows(a, "1 story with content warnings waits until it ends") && !shows(a, "Still opening")
    });
    assert!(
        !shows(&sam, "This story mentions"),
        "the story is not even offered while on a break"
    );

    open_settings(&mut sam);
    click(&mut sam, "End my break");
    wait_until(&mut sam, "the end of the break", |a| shows(a, "Your break is over"));
    click(&mut sam, "Close settings");
    wait_until(&mut sam, "the story back", |a| {
        shows(a, "This story mentions: Cravings.")
    });
}

#[test]
fn muting_and_names_muting_hides_a_members_stories_here_and_a_new_name_reaches_the_group() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    share_story(&mut alex, "Day ten", "Ten days and the mornings are easier.");
    click(&mut sam, "Stories");
    wait_until(&mut sam, "Alex's story", |a| {
        shows(a, "Ten days and the mornings are easier.")
    });

    click(&mut sam, "Members");
    click(&mut sam, "Mute Alex");
    wait_until(&mut sam, "muted", |a| shows(a, "Alex is muted on this device"));
    click(&mut sam, "Stories");
    assert!(!shows(&sam, "Ten days and the mornings are easier."));
    assert!(shows(&sam, "1 story from a member you muted is not shown."));
    click(&mut sam, "Members");
    click(&mut sam, "Unmute Alex");
    wait_until(&mut sam, "unmuted", |a| shows(a, "Alex is no longer muted"));

    click(&mut alex, "Members");
    fill(&mut alex, "Your name in this group", "Alexis");
    click(&mut alex, "Save my name");
    wait_until(&mut alex, "the new name", |a| {
        shows(a, "Members will see you as Alexis")
    });
    wait_until(&mut sam, "the new name on Sam's device", |a| {
        shows(a, "Alexis · Member")
    });
}

#[test]
fn an_export_is_written_where_asked_and_says_it_is_not_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut sam = sam_at_group_home(dir.path());
    share_story(&mut sam, "Sunday", "Coffee after the meeting helped.");
    open_settings(&mut sam);
    assert!(shows(&sam, "An export is not encrypted"), "said before exporting");
    let folder = out.path().join("exports");
    replace(&mut sam, "Into the folder", &folder.to_string_lossy());
    click(&mut sam, "Export this group");
    wait_until(&mut sam, "the export", |a| shows(a, "Saved to"));
    assert!(shows(&sam, "This copy is not encrypted"));
    let files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one Markdown file: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Coffee after the meeting helped."), "{text}");
}

#[test]
fn a_groups_own_relay_is_saved_only_when_its_address_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_with_a_group(dir.path());
    open_settings(&mut sam);
    click(&mut sam, "Our group's own relay");
    fill(&mut sam, "Relay address (https://…)", "https://not a relay");
    click(&mut sam, "Use this relay");
    wait_until(&mut sam, "the refusal", |a| {
        shows(a, "'https://not a relay' is not a relay address")
    });
    replace(
        &mut sam,
        "Relay address (https://…)",
        "https://relay.tuesday-circle.example",
    );
    click(&mut sam, "Use this relay");
    wait_until(&mut sam, "the saved choice", |a| {
        shows(a, "It takes effect the next time you unlock")
    });
    // The tests switch relays off where the app starts: the screen says the choice waits.
    assert!(shows(&sam, "Relays are switched off where Alongside was started"));
    drop(sam);
    let vault = alongside_core::vault::Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
    assert_eq!(
        vault.relay_preference().unwrap().as_deref(),
        Some("https://relay.tuesday-circle.example")
    );
}

#[test]
fn theme_and_text_size_change_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut sam = sam_with_a_group(dir.path());
    open_settings(&mut sam);
    click(&mut sam, "Dark");
    click(&mut sam, "Largest");
    sam.run();
    let ctx = sam.ctx.clone();
    assert_eq!(ctx.theme(), egui::Theme::Dark, "the dark theme is on");
    let body = ctx.style_of(egui::Theme::Dark).text_styles[&egui::TextStyle::Body].size;
    assert_eq!(body, 22.0);
}
