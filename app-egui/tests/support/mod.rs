//! What the desktop app's widget tests share: opening the real app on a profile in a
//! temporary directory, waiting on its backend (never sleeping), and driving widgets by
//! their accessible labels.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::path::Path;
use std::time::{Duration, Instant};

use alongside_app::gui::{AlongsideApp, GuiConfig};
use alongside_core::crypto::PassphraseKdf;
use alongside_net::NetConfig;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable};

pub const PASSPHRASE: &str = "river stone lantern";
/// How long any backend step may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub type App = Harness<'static, AlongsideApp>;

pub fn open_app(dir: &Path) -> App {
    let config = GuiConfig {
        data_dir: dir.to_path_buf(),
        kdf: PassphraseKdf::TEST,
        net: NetConfig::loopback(),
    };
    // `run` fails after `max_steps` frames that each asked for another (default 4). The
    // backend thread calls `request_repaint` whenever an event arrives, which can land in
    // the middle of a `run` and add a few frames; allow for that.
    let mut harness = Harness::builder()
        .with_size(egui::vec2(800.0, 1400.0))
        .with_max_steps(64)
        .build_eframe(move |cc| AlongsideApp::new(cc, config));
    harness.run();
    harness
}

/// Steps the app until `done` holds, waiting on the backend's events (never sleeping) in
/// between; fails after [`PATIENCE`].
pub fn wait_until(app: &mut App, what: &str, done: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        app.run();
        if done(app) {
            return;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("timed out waiting for {what}"));
        app.state_mut().wait_for_backend(left);
    }
}

/// Whether any widget's label contains `text`.
pub fn shows(app: &App, text: &str) -> bool {
    app.query_all_by_label_contains(text).next().is_some()
}

/// Clicks into the field labelled `label` and types `text`.
pub fn fill(app: &mut App, label: &str, text: &str) {
    app.get_by_label(label).click();
    app.run();
    app.get_by_label(label).type_text(text);
    app.run();
}

/// Clicks into the field labelled `label`, selects all of it and types `text` instead.
pub fn replace(app: &mut App, label: &str, text: &str) {
    app.get_by_label(label).click();
    app.run();
    app.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    app.run();
    app.get_by_label(label).type_text(text);
    app.run();
}

/// Clicks the widget labelled `label` through its accessibility action, the way a
/// screen reader would: the click reaches that widget even if what the backend sent
/// meanwhile moves it on screen.
pub fn click(app: &mut App, label: &str) {
    app.run();
    app.get_by_label(label).click_accesskit();
    app.run();
}

/// First run in `dir`: choose the passphrase, name the device, wait for the groups screen.
pub fn first_run(app: &mut App) {
    wait_until(app, "the first-run screen", |a| shows(a, "Welcome to Alongside"));
    fill(app, "Passphrase", PASSPHRASE);
    fill(app, "Type the passphrase again", PASSPHRASE);
    fill(app, "A name for this device", "my laptop");
    click(app, "Create my profile");
    wait_until(app, "the groups screen", |a| shows(a, "Your groups"));
}

pub fn create_group(app: &mut App, name: &str, me: &str) {
    fill(app, "Group name", name);
    fill(app, "Your name in this group", me);
    click(app, "Create group");
    wait_until(app, "the new group in the list", |a| a.query_by_label(name).is_some());
}

/// A new profile in `dir` whose owner, Sam, has started "Tuesday Circle".
pub fn sam_with_a_group(dir: &Path) -> App {
    let mut app = open_app(dir);
    first_run(&mut app);
    create_group(&mut app, "Tuesday Circle", "Sam");
    app
}

/// Sam's profile in `dir`, at the home of the group Sam just started.
pub fn sam_at_group_home(dir: &Path) -> App {
    let mut app = sam_with_a_group(dir);
    click(&mut app, "Tuesday Circle");
    wait_until(&mut app, "the group's home", |a| shows(a, "No stories yet"));
    app
}

/// Writes and shares a story from the group's home (stories tab).
pub fn share_story(app: &mut App, title: &str, body: &str) {
    click(app, "Write a story");
    fill(app, "Title", title);
    fill(app, "Your story", body);
    click(app, "Share story");
    wait_until(app, "the saved story", |a| shows(a, body));
}

/// Sam, at the home of "Tuesday Circle", makes an invitation; returns its ticket text as
/// the screen shows it.
pub fn invite_from_members_tab(sam: &mut App) -> String {
    click(sam, "Members");
    assert!(shows(sam, "Sam (you)"), "the members tab lists Sam");
    click(sam, "Create invitation");
    wait_until(sam, "the invitation", |a| {
        a.query_by_label("Invitation ticket").is_some()
    });
    sam.get_by_label("Invitation ticket")
        .accesskit_node()
        .value()
        .expect("the ticket field has the ticket as its value")
}

/// A new profile in `dir` that joins with `ticket` as `name`; returns the app and what the
/// join screen then says.
pub fn join_with(dir: &Path, ticket: &str, name: &str) -> App {
    let mut app = open_app(dir);
    first_run(&mut app);
    fill(&mut app, "Invitation ticket", ticket);
    fill(&mut app, "Your name in the group you join", name);
    click(&mut app, "Join group");
    app
}

/// Sam (who started "Tuesday Circle") and Alex (who joined it with Sam's invitation),
/// each at the group's home, connected to each other.
pub fn sam_and_alex(dir_sam: &Path, dir_alex: &Path) -> (App, App) {
    let mut sam = sam_at_group_home(dir_sam);
    let ticket = invite_from_members_tab(&mut sam);
    let mut alex = join_with(dir_alex, &ticket, "Alex");
    wait_until(&mut alex, "joining", |a| shows(a, "You joined Tuesday Circle"));
    click(&mut alex, "Tuesday Circle");
    wait_until(&mut alex, "the connection to Sam", |a| shows(a, "Connected now: Sam"));
    wait_until(&mut sam, "the connection to Alex", |a| shows(a, "Connected now: Alex"));
    (sam, alex)
}

/// Presses Tab until the widget labelled `label` has the keyboard focus.
pub fn tab_to(app: &mut App, label: &str) {
    for _ in 0..20 {
        if app.get_by_label(label).is_focused() {
            return;
        }
        app.key_press(egui::Key::Tab);
        app.run();
    }
    panic!("Tab never reached {label:?}");
}

/// The existing profile in `dir`, opened and unlocked, at the list of groups.
pub fn unlock_profile(dir: &Path) -> App {
    let mut app = open_app(dir);
    wait_until(&mut app, "the unlock screen", |a| shows(a, "Welcome back"));
    fill(&mut app, "Passphrase", PASSPHRASE);
    click(&mut app, "Unlock");
    wait_until(&mut app, "the groups screen", |a| shows(a, "Your groups"));
    app
}

/// The text of the meeting notes field as the screen has it (empty if none is shown).
pub fn notes(app: &App) -> String {
    app.query_by_label("Meeting notes")
        .and_then(|n| n.accesskit_node().value())
        .unwrap_or_default()
}
