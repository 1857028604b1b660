//! `screenshots`: renders the desktop app's main screens, with realistic sample content,
//! into PNG files (by default `docs/screenshots/`). Run it with `scripts/screenshots.sh`.
//!
//! The app runs headless under egui_kittest and is drawn by wgpu on whatever adapter the
//! machine has (a software one such as Mesa's lavapipe is enough). The sample group is
//! written through core: Sam facilitates "Tuesday Circle"; Alex and Kim joined, and their
//! devices' writing arrives as sealed units, as it would by sync. Nothing leaves the
//! machine: the node runs on loopback with relays off.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alongside_app::gui::{AlongsideApp, GuiConfig};
use alongside_core::crypto::PassphraseKdf;
use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::ids::GroupId;
use alongside_core::membership::Role;
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use alongside_core::vault::{SupportContact, Vault, VaultError};
use alongside_net::NetConfig;
use anyhow::{Context, Result, bail};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const PASSPHRASE: &str = "river stone lantern";
const DAY_MS: i64 = 86_400_000;

type App = Harness<'static, AlongsideApp>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn story(title: &str, body: &str, warnings: &[&str]) -> NewStory {
    NewStory {
        title: title.into(),
        body: body.into(),
        warnings: warnings.iter().map(|w| w.to_string()).collect(),
        no_replies: false,
    }
}

/// Another member of `group` in Sam's `vault`: added by Sam, joined, named, and able to
/// write; `write` runs on their session and what it seals reaches Sam's device.
fn member(vault: &mut Vault, group: &GroupId, name: &str) -> Result<GroupSession> {
    let secrets = MembershipSecrets::generate(&mut vault.session_rng());
    let keys = secrets.public_keys(group);
    vault.edit(group, |s| s.add_member(keys, Role::Member, now_ms()).map(|_| ()))?;
    let mut ops = vault.session(group)?.ops();
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    let mut session = GroupSession::join(vault.session_rng(), secrets, &ops)?;
    session.set_display_name(name)?;
    deliver(vault, group, &mut session)?;
    Ok(session)
}

/// Hands what `from` sealed to Sam's device.
fn deliver(vault: &mut Vault, group: &GroupId, from: &mut GroupSession) -> Result<()> {
    let units: Vec<Vec<u8>> = from.take_outbox().iter().map(|u| u.bytes().to_vec()).collect();
    vault.edit(group, |s| {
        for unit in &units {
            s.receive_unit(unit)
                .map_err(|e| VaultError::Invalid(format!("a sample unit was refused: {e}")))?;
        }
        Ok::<_, VaultError>(())
    })?;
    Ok(())
}

/// Sam's profile in `dir` with a lived-in group.
fn sample_profile(dir: &Path) -> Result<()> {
    let mut vault = Vault::init(dir, "Sam's laptop", PASSPHRASE.as_bytes(), PassphraseKdf::STRONG)?;
    let now = now_ms();
    let group = vault.create_group("Tuesday Circle", "Sam", now - 40 * DAY_MS)?;
    vault.create_group("Parents in recovery", "Sam", now - 20 * DAY_MS)?;
    vault.edit(&group, |s| {
        s.set_agreement(
            "What is shared here stays here.\nWe listen without fixing.\nNo one has to speak.\nA setback is not a failure.",
            now - 39 * DAY_MS,
        )?;
        s.acknowledge_agreement(now - 39 * DAY_MS)
    })?;
    let mut alex = member(&mut vault, &group, "Alex")?;
    let mut kim = member(&mut vault, &group, "Kim")?;

    kim.add_story(
        &story(
            "Ninety days",
            "Ninety days today. The cravings came back after the funeral, and I called Sam instead of going out.",
            &["Cravings", "Grief and loss"],
        ),
        now - 2 * DAY_MS,
    )?;
    deliver(&mut vault, &group, &mut kim)?;
    let back = alex.add_story(
        &story(
            "First week back at work",
            "I was scared of the Friday drinks. I told my manager I was driving, and went for a walk instead. It worked.",
            &[],
        ),
        now - DAY_MS,
    )?;
    deliver(&mut vault, &group, &mut alex)?;
    vault.edit(&group, |s| {
        s.react(&back.to_hex(), "support", now - DAY_MS / 2).map(|_| ())?;
        s.reply(&back.to_hex(), "Proud of you. Walking helps me too.", now - DAY_MS / 2)
            .map(|_| ())?;
        s.add_story(
            &story(
                "What helped this week",
                "Coffee after the meeting, early nights, and writing things down before bed.",
                &[],
            ),
            now - 3 * 3_600_000,
        )
        .map(|_| ())
    })?;

    let goal = vault.edit(&group, |s| {
        s.add_goal("Walk every morning", Some("30 days"), &[], now - 9 * DAY_MS)
    })?;
    for (days_ago, kind, mood) in [
        (8, CheckInKind::Progress, 3),
        (7, CheckInKind::Progress, 4),
        (6, CheckInKind::Progress, 4),
        (5, CheckInKind::Progress, 3),
        (4, CheckInKind::Setback, 2),
        (3, CheckInKind::Progress, 3),
        (2, CheckInKind::Progress, 4),
        (1, CheckInKind::Progress, 4),
    ] {
        let checkin = NewCheckIn {
            date: alongside_core::model::date_of(now - days_ago * DAY_MS),
            kind,
            mood: Some(mood),
            craving: Some(if kind == CheckInKind::Setback { 8 } else { 3 }),
            halt: if kind == CheckInKind::Setback {
                vec!["lonely".into(), "tired".into()]
            } else {
                Vec::new()
            },
            note: String::new(),
        };
        vault.edit(&group, |s| s.check_in(&goal.to_hex(), &checkin, now).map(|_| ()))?;
    }

    let meeting = vault.edit(&group, |s| {
        s.add_meeting(
            &NewMeeting {
                title: "Tuesday meeting".into(),
                at: "2026-12-01T19:00:00+00:00".into(),
                place: Some("Library, room 2".into()),
                facilitator: Some(s.me()),
                agenda: "Check-in round, then readings, then what is coming up this week.".into(),
            },
            now - DAY_MS,
        )
    })?;
    vault.edit(&group, |s| {
        s.edit_meeting_notes_from(
            &meeting.to_hex(),
            "",
            "Check-in round: everyone spoke.\nKim: ninety days on Thursday.\nAlex: first week back at work.\n",
        )
    })?;
    alex.reach_out(
        "Rough evening. Could someone call me after nine?",
        &[],
        now - 40 * 60_000,
    )?;
    deliver(&mut vault, &group, &mut alex)?;
    vault.set_support_contacts(&[
        SupportContact {
            name: "County crisis line (24 hours)".into(),
            reach: "0800 111 222".into(),
        },
        SupportContact {
            name: "Jo, my sponsor".into(),
            reach: "07700 900123".into(),
        },
    ])?;
    Ok(())
}

/// The app on `dir`, drawn by wgpu.
fn open(dir: &Path) -> App {
    let config = GuiConfig {
        data_dir: dir.to_path_buf(),
        kdf: PassphraseKdf::STRONG,
        net: NetConfig::loopback(),
    };
    let mut app = Harness::builder()
        .with_size(egui::vec2(760.0, 900.0))
        .with_max_steps(64)
        .wgpu()
        .build_eframe(move |cc| AlongsideApp::new(cc, config));
    app.run();
    app
}

fn shows(app: &App, text: &str) -> bool {
    app.query_all_by_label_contains(text).next().is_some()
}

fn wait_until(app: &mut App, what: &str, done: impl Fn(&App) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        app.run();
        if done(app) {
            return Ok(());
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            bail!("timed out waiting for {what}");
        };
        app.state_mut().wait_for_backend(left);
    }
}

fn click(app: &mut App, label: &str) {
    app.run();
    app.get_by_label(label).click_accesskit();
    app.run();
}

fn fill(app: &mut App, label: &str, text: &str) {
    app.get_by_label(label).click();
    app.run();
    app.get_by_label(label).type_text(text);
    app.run();
}

/// Renders the window into `out/name.png`.
fn shoot(app: &mut App, out: &Path, name: &str) -> Result<()> {
    app.run();
    let image = app
        .render()
        .map_err(anyhow::Error::msg)
        .context("rendering with wgpu")?;
    let path = out.join(format!("{name}.png"));
    image
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/screenshots".into()));
    std::fs::create_dir_all(&out)?;
    let dir = tempfile::tempdir()?;
    sample_profile(dir.path())?;

    let mut app = open(dir.path());
    wait_until(&mut app, "the unlock screen", |a| shows(a, "Welcome back"))?;
    shoot(&mut app, &out, "unlock")?;
    fill(&mut app, "Passphrase", PASSPHRASE);
    click(&mut app, "Unlock");
    wait_until(&mut app, "the groups", |a| shows(a, "Your groups"))?;
    shoot(&mut app, &out, "groups")?;

    click(&mut app, "Tuesday Circle");
    wait_until(&mut app, "the group's home", |a| shows(a, "Write a story"))?;
    shoot(&mut app, &out, "stories")?;
    click(&mut app, "Goals");
    shoot(&mut app, &out, "goals")?;
    click(&mut app, "Meetings");
    click(&mut app, "Open Tuesday meeting");
    shoot(&mut app, &out, "meeting-notes")?;
    click(&mut app, "Back to meetings");
    click(&mut app, "Reach out");
    fill(
        &mut app,
        "What is going on, and what would help?",
        "Hard night. I keep thinking about drinking.",
    );
    click(&mut app, "Send reach-out");
    wait_until(&mut app, "the reach-out", |a| shows(a, "Delivered to 0 of 2 members"))?;
    shoot(&mut app, &out, "reach-out")?;
    click(&mut app, "Agreements");
    shoot(&mut app, &out, "agreements")?;
    click(&mut app, "Members");
    click(&mut app, "Create invitation");
    wait_until(&mut app, "the invitation", |a| {
        a.query_by_label("Invitation ticket").is_some()
    })?;
    shoot(&mut app, &out, "members-invite")?;
    click(&mut app, "Settings");
    wait_until(&mut app, "the settings", |a| shows(a, "Taking a break"))?;
    shoot(&mut app, &out, "settings")?;
    Ok(())
}
