//! Goals, check-ins and agreements in the desktop app, driven through its real widgets by
//! accessible label (egui_kittest), against a real profile in a temporary directory.
//!
//! The small helpers are copies of those in `gui.rs`, so each file can change on its own.
//! Every wait is on the backend's events, never a sleep, and fails after [`PATIENCE`].

mod support;

use std::path::Path;

use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::membership::Role;
use alongside_core::vault::{Vault, VaultError};
use egui_kittest::kittest::{NodeT as _, Queryable};
use support::*;

const DAY_MS: i64 = 86_400_000;

/// Opens Sam's group from the groups screen and waits until its home shows.
fn open_group(app: &mut App) {
    click(app, "Tuesday Circle");
    wait_until(app, "the group's home", |a| {
        a.query_by_label("Back to your groups").is_some()
    });
}

/// The existing profile in `dir`, unlocked, at the home of Sam's group.
fn unlock_at_group_home(dir: &Path) -> App {
    let mut app = unlock_profile(dir);
    open_group(&mut app);
    app
}

/// Adds a member called `name` to the one group of the (closed) profile in `dir`, as if
/// they had joined and their device had synced their display name to this one.
fn add_member(dir: &Path, name: &str) {
    let mut vault = Vault::unlock(dir, PASSPHRASE.as_bytes()).unwrap();
    let group = vault.group_ids().unwrap()[0];
    let secrets = MembershipSecrets::generate(&mut vault.session_rng());
    let keys = secrets.public_keys(&group);
    vault
        .edit(&group, |s| s.add_member(keys, Role::Member, now_ms()).map(|_| ()))
        .unwrap();
    let mut ops = vault.session(&group).unwrap().ops();
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    let mut member = GroupSession::join(vault.session_rng(), secrets, &ops).unwrap();
    member.set_display_name(name).unwrap();
    let units: Vec<Vec<u8>> = member.take_outbox().iter().map(|u| u.bytes().to_vec()).collect();
    vault
        .edit(&group, |s| {
            for unit in &units {
                s.receive_unit(unit).expect("the new member's name is accepted");
            }
            Ok::<_, VaultError>(())
        })
        .unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every text on screen that says "0 days" or "0 day" as a number of its own (not "90 days").
fn texts_with_zero_days(app: &App) -> Vec<String> {
    app.query_all_by_label_contains("0 day")
        .filter_map(|node| {
            let node = node.accesskit_node();
            node.value().or(node.label()).map(|t| t.to_string())
        })
        .filter(|text| {
            text.match_indices("0 day")
                .any(|(i, _)| i == 0 || !text.as_bytes()[i - 1].is_ascii_digit())
        })
        .collect()
}

/// The date `days_ago` days before today, as the app dates check-ins.
fn day(days_ago: i64) -> String {
    alongside_core::model::date_of(now_ms() - days_ago * DAY_MS)
}

/// Checks in on the goal titled `goal`: a day, progress or setback, and what else `extra`
/// fills in; waits until the check-in is saved.
fn check_in(app: &mut App, goal: &str, day: &str, kind: &str, extra: impl FnOnce(&mut App)) {
    click(app, &format!("Check in on \u{201c}{goal}\u{201d}"));
    replace(app, "Day (YYYY-MM-DD)", day);
    click(app, kind);
    extra(app);
    click(app, "Save check-in");
    wait_until(app, "the saved check-in", |a| {
        a.query_by_label("Save check-in").is_none()
    });
}

#[test]
fn a_setback_is_told_with_the_days_that_still_count_and_never_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = sam_with_a_group(dir.path());
    open_group(&mut app);

    // The tabs are reachable by keyboard.
    tab_to(&mut app, "Goals");
    app.key_press(egui::Key::Enter);
    app.run();
    assert!(shows(&app, "No goals yet"), "the goals tab is open");

    click(&mut app, "Add a goal");
    fill(&mut app, "What is your goal?", "No drinking");
    fill(&mut app, "Target (optional), for example \"90 days\"", "90 days");
    assert!(
        shows(&app, "Everyone in Tuesday Circle will see this goal"),
        "the audience is shown before saving"
    );
    click(&mut app, "Save goal");
    wait_until(&mut app, "the saved goal", |a| shows(a, "Your goal is saved"));
    assert!(shows(&app, "Your goal · target: 90 days"));
    assert!(shows(&app, "Who sees it: Whole group"));
    assert!(shows(&app, "No check-ins yet."));

    check_in(&mut app, "No drinking", &day(2), "Progress", |app| {
        click(app, "4 · good");
        click(app, "Tired");
        fill(app, "A short note (optional)", "Went to a meeting");
    });
    assert!(shows(&app, "Your check-in is saved"));
    assert!(shows(
        &app,
        "1 day of progress in all · current run 1 day · longest run 1 day"
    ));
    assert!(shows(
        &app,
        "Progress · mood 4 of 5 · tired · \u{201c}Went to a meeting\u{201d}"
    ));

    check_in(&mut app, "No drinking", &day(1), "Progress", |_| {});
    assert!(shows(
        &app,
        "2 days of progress in all · current run 2 days · longest run 2 days"
    ));

    check_in(&mut app, "No drinking", &day(0), "Setback", |app| {
        assert!(shows(app, "A setback is information, not a verdict."));
    });
    assert!(
        shows(
            &app,
            "You logged a setback. Your 2 days still count — longest run 2 days."
        ),
        "the message after a setback keeps the days built"
    );
    assert!(
        shows(&app, "2 days of progress in all · longest run 2 days"),
        "the days of progress and the longest run still show"
    );
    assert!(shows(&app, "Last setback today — your 2 days still count."));
    assert!(shows(&app, "Your next day of progress starts a new run."));
    assert!(shows(&app, &format!("{} · Setback", day(0))));
    assert_eq!(
        texts_with_zero_days(&app),
        Vec::<String>::new(),
        "a setback never shows as a counter at zero"
    );
    assert_eq!(app.query_all_by_label_contains("current run 0").count(), 0);
}

#[test]
fn a_goal_shared_with_chosen_members_shows_who_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(sam_with_a_group(dir.path()));
    add_member(dir.path(), "Alex");
    add_member(dir.path(), "Kim");

    let mut app = unlock_at_group_home(dir.path());
    click(&mut app, "Goals");
    click(&mut app, "Add a goal");
    fill(&mut app, "What is your goal?", "Call my sponsor every Sunday");
    click(&mut app, "Only members I choose");
    assert!(shows(&app, "Choose at least one member"));
    assert!(
        app.get_by_label("Save goal").accesskit_node().is_disabled(),
        "nothing is shared before someone is chosen"
    );
    click(&mut app, "Alex");
    assert!(
        shows(&app, "Only you and Alex will see this goal and its check-ins."),
        "the audience is shown before saving"
    );
    click(&mut app, "Save goal");
    wait_until(&mut app, "the saved goal", |a| shows(a, "Your goal is saved"));
    assert!(app.query_by_label("Call my sponsor every Sunday").is_some());
    assert!(shows(&app, "Who sees it: only you and Alex"));
    assert!(!shows(&app, "Kim"), "Kim was not chosen and is not named");
}

#[test]
fn agreements_are_written_agreed_to_and_shown_first_until_agreed() {
    let first = "What is shared here stays here.";
    let second = "What is shared here stays here. We listen without fixing.";
    let dir = tempfile::tempdir().unwrap();
    let mut app = sam_with_a_group(dir.path());
    open_group(&mut app);
    assert!(shows(&app, "No stories yet"), "with no agreements, stories come first");

    click(&mut app, "Agreements");
    assert!(shows(&app, "This group has no agreements yet."));
    click(&mut app, "Write agreements");
    fill(&mut app, "The group's agreements", first);
    click(&mut app, "Save agreements");
    wait_until(&mut app, "the saved agreements", |a| {
        shows(a, "The agreements are saved")
    });
    assert!(shows(&app, first));
    assert!(shows(&app, "Nobody has agreed to this version yet."));
    assert!(shows(&app, "last changed"));

    // Reopening the group: the agreements Sam has not agreed to come first.
    click(&mut app, "Back to your groups");
    open_group(&mut app);
    assert!(shows(&app, first), "the agreements are shown first");
    assert!(!shows(&app, "No stories yet"));

    click(&mut app, "I agree to these");
    wait_until(&mut app, "the agreement saved", |a| {
        shows(a, "You have agreed to these.")
    });
    assert!(shows(&app, "Agreed to by: you"));
    assert!(app.query_by_label("I agree to these").is_none());

    click(&mut app, "Back to your groups");
    open_group(&mut app);
    assert!(
        shows(&app, "No stories yet"),
        "once agreed, the group opens on its stories"
    );

    // A change is a new version: everyone is asked again, and it comes first again.
    click(&mut app, "Agreements");
    click(&mut app, "Edit agreements");
    assert!(
        shows(&app, "asked to agree to it again"),
        "the editor says what saving does"
    );
    replace(&mut app, "The group's agreements", second);
    click(&mut app, "Save agreements");
    wait_until(&mut app, "the changed agreements", |a| shows(a, second));
    assert!(shows(&app, "Nobody has agreed to this version yet."));
    assert!(app.query_by_label("I agree to these").is_some());

    click(&mut app, "Back to your groups");
    open_group(&mut app);
    assert!(shows(&app, second), "the changed agreements come first");
    assert!(!shows(&app, "No stories yet"));
}
