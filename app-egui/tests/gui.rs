//! The desktop app, driven through its real widgets by accessible label (egui_kittest),
//! against a real profile in a temporary directory. No display and no GPU are needed.
//!
//! The app reads no environment variable: everything comes from its `GuiConfig`, so
//! inherited `ALONGSIDE_*` variables cannot change what these tests do. (The binary's
//! `main` is what reads `ALONGSIDE_TEST_KDF`; here the weak test KDF is passed directly.)
//! The app's accessibility check (every input has a name) runs after each settled frame.

mod support;

use std::path::Path;

use egui_kittest::kittest::{NodeT as _, Queryable};
use support::*;

#[test]
fn first_run_creates_a_profile_and_shows_the_groups_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = open_app(dir.path());
    wait_until(&mut app, "the first-run screen", |a| shows(a, "Welcome to Alongside"));
    assert!(
        shows(&app, "nobody can recover"),
        "the first-run screen says plainly that a lost passphrase cannot be recovered"
    );
    assert!(
        !alongside_core::profile::exists(dir.path()),
        "nothing is written before the person chooses"
    );

    fill(&mut app, "Passphrase", "river");
    assert!(shows(&app, "Too short yet"), "a short passphrase gets a hint");
    // The field keeps the focus: go on typing.
    app.get_by_label("Passphrase").type_text(" stone lantern");
    app.run();
    assert!(shows(&app, "Strong."), "a longer one is called strong");
    assert!(
        app.get_by_label("Create my profile").accesskit_node().is_disabled(),
        "nothing can be created before the passphrase is typed twice"
    );

    fill(&mut app, "Type the passphrase again", PASSPHRASE);
    fill(&mut app, "A name for this device", "my laptop");
    click(&mut app, "Create my profile");
    wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));
    assert!(alongside_core::profile::exists(dir.path()), "the profile is on disk");
    assert!(shows(&app, "You are not in a group yet"));
    assert!(shows(&app, "my laptop"), "the device label is shown in the top bar");
}

#[test]
fn a_wrong_passphrase_is_refused_and_the_right_one_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    // A profile with a group, then the app closed.
    drop(sam_with_a_group(dir.path()));

    let mut app = open_app(dir.path());
    wait_until(&mut app, "the unlock screen", |a| shows(a, "Welcome back"));
    fill(&mut app, "Passphrase", "not the passphrase");
    click(&mut app, "Unlock");
    wait_until(&mut app, "the wrong-passphrase message", |a| {
        shows(a, "did not open your profile")
    });
    assert!(
        app.query_by_label("Tuesday Circle").is_none(),
        "nothing of the profile is shown"
    );

    // The field was cleared; Enter in it unlocks too (keyboard only).
    fill(&mut app, "Passphrase", PASSPHRASE);
    app.key_press(egui::Key::Enter);
    wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));
    assert!(
        app.query_by_label("Tuesday Circle").is_some(),
        "the group made earlier is listed"
    );
    assert!(!shows(&app, "did not open your profile"));
}

#[test]
fn locking_returns_to_the_unlock_screen_and_hides_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = sam_with_a_group(dir.path());

    click(&mut app, "Lock");
    wait_until(&mut app, "the unlock screen", |a| shows(a, "Alongside is locked"));
    assert!(app.query_by_label("Tuesday Circle").is_none());
    assert!(app.query_by_label("Lock").is_none());

    fill(&mut app, "Passphrase", PASSPHRASE);
    click(&mut app, "Unlock");
    wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));
    assert!(app.query_by_label("Tuesday Circle").is_some());
}

#[test]
fn a_created_group_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let app = sam_with_a_group(dir.path());
    assert!(shows(&app, "You started \"Tuesday Circle\""));
    assert!(shows(&app, "1 member · you are Sam (facilitator)"));
    assert!(!shows(&app, "You are not in a group yet"));
}

#[test]
fn a_story_with_a_warning_stays_closed_until_the_reader_opens_it() {
    let body = "The third week was the hardest, and the group got me through it.";
    let dir = tempfile::tempdir().unwrap();
    let mut app = sam_at_group_home(dir.path());

    click(&mut app, "Write a story");
    assert!(
        shows(&app, "Shared with everyone in Tuesday Circle."),
        "the audience is shown before sharing"
    );
    fill(&mut app, "Title", "Ninety days");
    fill(&mut app, "Your story", body);
    click(&mut app, "Cravings");
    fill(&mut app, "Other warnings (separate them with commas)", "court date");
    click(&mut app, "Ask for no replies");
    click(&mut app, "Share story");
    wait_until(&mut app, "the saved story", |a| shows(a, "Your story is saved"));

    assert!(shows(&app, "Sam shared a story."));
    assert!(shows(&app, "This story mentions: Cravings, court date."));
    assert!(
        !shows(&app, "The third week"),
        "the body stays hidden behind its warnings"
    );
    assert!(!shows(&app, "Ninety days"), "so does the title");

    assert!(
        shows(&app, "Open Sam's story of 20"),
        "the button's accessible name says whose story it opens"
    );
    let open = app
        .query_all_by_label_contains("Open Sam's story of")
        .next()
        .unwrap()
        .accesskit_node()
        .label()
        .unwrap();
    click(&mut app, &open);
    assert!(shows(&app, body), "opening the story shows its words");
    assert!(shows(&app, "Ninety days"));
    assert!(shows(&app, "Sam asked for no replies."));

    click(&mut app, "Close story");
    assert!(!shows(&app, "The third week"), "and it can be closed again");
}

#[test]
fn a_story_without_warnings_shows_at_once_is_unreadable_on_disk_and_survives_a_restart() {
    let body = "Coffee with the group on Sunday helped more than I expected.";
    let dir = tempfile::tempdir().unwrap();
    {
        let mut app = sam_at_group_home(dir.path());
        click(&mut app, "Write a story");
        fill(&mut app, "Title", "Sunday coffee");
        fill(&mut app, "Your story", body);
        click(&mut app, "Share story");
        wait_until(&mut app, "the saved story", |a| shows(a, body));
    }
    for needle in [body, "Sunday coffee", "Tuesday Circle"] {
        assert_eq!(
            files_containing(dir.path(), needle.as_bytes()),
            Vec::<std::path::PathBuf>::new(),
            "{needle:?} must not be readable on disk"
        );
    }
    let mut app = unlock_profile(dir.path());
    click(&mut app, "Tuesday Circle");
    wait_until(&mut app, "the group's home", |a| shows(a, "Stories"));
    assert!(shows(&app, body), "the story was saved to disk and reads back");
    assert!(app.query_all_by_label_contains("Open Sam's story").next().is_none());
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle) {
            found.push(path);
        }
    }
    found
}

#[test]
fn first_run_and_a_first_group_work_by_keyboard_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = open_app(dir.path());
    wait_until(&mut app, "the first-run screen", |a| shows(a, "Welcome to Alongside"));
    for (label, text) in [
        ("Passphrase", PASSPHRASE),
        ("Type the passphrase again", PASSPHRASE),
        ("A name for this device", "my laptop"),
    ] {
        tab_to(&mut app, label);
        app.get_by_label(label).type_text(text);
        app.run();
    }
    tab_to(&mut app, "Create my profile");
    app.key_press(egui::Key::Enter);
    wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));

    tab_to(&mut app, "Group name");
    app.get_by_label("Group name").type_text("Tuesday Circle");
    app.run();
    tab_to(&mut app, "Your name in this group");
    app.get_by_label("Your name in this group").type_text("Sam");
    app.run();
    app.key_press(egui::Key::Enter);
    wait_until(&mut app, "the new group in the list", |a| {
        a.query_by_label("Tuesday Circle").is_some()
    });

    tab_to(&mut app, "Lock");
    app.key_press(egui::Key::Enter);
    wait_until(&mut app, "the unlock screen", |a| shows(a, "Alongside is locked"));
}

#[test]
fn a_long_list_of_stories_shows_a_page_and_older_ones_when_asked() {
    use alongside_core::model::edits::NewStory;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut vault = alongside_core::vault::Vault::init(
            dir.path(),
            "my laptop",
            PASSPHRASE.as_bytes(),
            alongside_core::crypto::PassphraseKdf::TEST,
        )
        .unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_000_000_000).unwrap();
        for i in 0..35 {
            let story = NewStory {
                title: format!("Evening {i}"),
                body: format!("Entry number {i} of the long list."),
                warnings: Vec::new(),
                no_replies: false,
            };
            vault
                .edit(&group, |s| s.add_story(&story, 1_795_000_000_000 + i * 60_000))
                .unwrap();
        }
    }
    let mut app = unlock_profile(dir.path());
    click(&mut app, "Tuesday Circle");
    wait_until(&mut app, "the group's home", |a| shows(a, "Entry number 34 of"));
    assert!(shows(&app, "Entry number 5 of"), "the newest 30 show");
    assert!(!shows(&app, "Entry number 4 of"), "older ones wait");
    assert!(shows(&app, "5 older stories are not shown."));
    click(&mut app, "Show older stories");
    wait_until(&mut app, "the next page, read by the backend", |a| {
        shows(a, "Entry number 0 of")
    });
    assert!(!shows(&app, "Show older stories"), "and the list ends calmly");
}

#[test]
fn after_an_unlock_a_group_shows_as_last_seen_and_then_as_it_is_now() {
    use alongside_core::model::edits::NewStory;
    use alongside_core::vault::{ShownLast, Vault};
    let dir = tempfile::tempdir().unwrap();
    {
        let mut app = sam_at_group_home(dir.path());
        share_story(&mut app, "First light", "The first morning I walked to the lake.");
        click(&mut app, "Back to your groups");
        wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));
    }
    // The window is closed; the profile gets a story it has not shown yet (as a sync
    // by another process would bring).
    let group = {
        let mut vault = Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
        let group = vault.group_ids().unwrap()[0];
        assert!(
            vault.shown_last(&group, ShownLast::Card).unwrap().is_some()
                && vault.shown_last(&group, ShownLast::Page).unwrap().is_some(),
            "closing the group kept its card and page for the next unlock"
        );
        let story = NewStory {
            title: "Second light".into(),
            body: "Coffee with my sister, the first in two years.".into(),
            warnings: Vec::new(),
            no_replies: false,
        };
        vault.edit(&group, |s| s.add_story(&story, 1_795_953_600_000)).unwrap();
        group
    };
    let mut app = unlock_profile(dir.path());
    click(&mut app, "Tuesday Circle");
    wait_until(&mut app, "the group as it is now", |a| {
        shows(a, "Coffee with my sister") && !shows(a, "Still opening")
    });
    assert!(shows(&app, "The first morning I walked to the lake."));
    drop(app);
    let vault = Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
    let page = vault.shown_last(&group, ShownLast::Page).unwrap().unwrap();
    let plain = String::from_utf8_lossy(&page);
    assert!(
        plain.contains("Coffee with my sister"),
        "the page kept is the newest shown"
    );
}

#[test]
fn a_damaged_group_is_shown_plainly_the_others_open_and_repair_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut app = sam_with_a_group(dir.path());
        create_group(&mut app, "Friday Circle", "Sam");
    }
    // The disk damages what Sam's device keeps of Tuesday Circle.
    {
        use alongside_core::ids::DocId;
        let mut v = alongside_core::vault::Vault::unlock(dir.path(), PASSPHRASE.as_bytes()).unwrap();
        let g = v.resolve_group("Tuesday Circle").unwrap();
        let me = v.session(&g).unwrap().me();
        v.spoil_snapshot_for_tests(&g, &DocId::member_doc(&me)).unwrap();
    }
    let mut app = unlock_profile(dir.path());
    wait_until(&mut app, "the damaged group to be named as such", |a| {
        shows(a, "A group this device could not read")
    });
    assert!(
        app.query_by_label("Friday Circle").is_some(),
        "the other group opens as usual"
    );
    assert!(shows(&app, "Your other groups are fine"));

    click(&mut app, "Repair this group");
    wait_until(&mut app, "the repair to be reported", |a| {
        shows(a, "Tuesday Circle is open again")
    });
    wait_until(&mut app, "the group to be listed again", |a| {
        a.query_by_label("Tuesday Circle").is_some() && !shows(a, "A group this device could not read")
    });
}
