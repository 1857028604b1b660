//! `alongside demo`: three members on this machine, loopback only, everything outside off.
//! One creates a group and invites the others; all three write while apart; they
//! reconcile; the converged content is printed. Temporary profiles are removed afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alongside_core::crypto::PassphraseKdf;
use alongside_core::ids::GroupId;
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use alongside_core::vault::Vault;
use alongside_net::{NetConfig, Node};
use anyhow::{Context, Result, bail};

use crate::commands::{Out, now_ms};

const LIMIT: Duration = Duration::from_secs(30);

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn edit<T: Send + 'static>(
    node: &Node,
    group: &GroupId,
    f: impl FnOnce(&mut alongside_core::group::GroupSession) -> Result<T, alongside_core::group::GroupError>
    + Send
    + 'static,
) -> Result<T> {
    let group = *group;
    Ok(node.with_vault(move |v| v.edit(&group, f)).await?)
}

async fn view(node: &Node, group: &GroupId) -> Result<String> {
    let group = *group;
    Ok(node.with_vault(move |v| Ok(describe(v.session(&group)?))).await?)
}

fn describe(s: &alongside_core::group::GroupSession) -> String {
    let mut text = String::new();
    for st in s.stories() {
        text += &format!("    story \"{}\" by {}\n", st.title, st.author.name);
    }
    for g in s.goals(now_ms()) {
        text += &format!(
            "    goal \"{}\" by {}: {} day(s) in all, {} setback(s) — the days still count\n",
            g.title, g.author.name, g.streak.total_days, g.streak.setbacks
        );
    }
    for m in s.meetings() {
        text += &format!("    meeting \"{}\" notes:\n", m.title);
        for line in m.notes.lines() {
            text += &format!("      | {line}\n");
        }
    }
    text
}

async fn start(root: &Path, name: &str) -> Result<Node> {
    let vault = Vault::init(&root.join(name), name, b"demo passphrase", PassphraseKdf::TEST)?;
    Ok(Node::start(vault, NetConfig::loopback()).await?)
}

/// Runs the demo, narrating to `o`.
pub(crate) fn run(o: &mut Out<'_>) -> Result<()> {
    let root = TempDir(std::env::temp_dir().join(format!("alongside-demo-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).context("could not create the demo's temporary folder")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(demo(&root.0, o))
}

async fn demo(root: &Path, o: &mut Out<'_>) -> Result<()> {
    let now = now_ms();
    let mut say = |text: &str| {
        let _ = writeln!(o.out, "{text}");
    };
    say("Alongside demo: three members on this machine, loopback only, nothing leaves it.");
    let (alice, bob, carol) = (
        start(root, "alice").await?,
        start(root, "bob").await?,
        start(root, "carol").await?,
    );
    let group = alice
        .with_vault(move |v| v.create_group("Tuesday Circle", "Alice", now))
        .await?;
    let meeting = edit(&alice, &group, move |s| {
        s.add_meeting(
            &NewMeeting {
                title: "Weekly circle".into(),
                at: "2026-12-01T19:00:00Z".into(),
                place: Some("Library room 4".into()),
                facilitator: None,
                agenda: "Check-ins; readings".into(),
            },
            now,
        )
    })
    .await?
    .to_hex();
    say("1. Alice creates \"Tuesday Circle\" and schedules a meeting.");

    for (node, name) in [(&bob, "Bob"), (&carol, "Carol")] {
        let ticket = alice.invite(group, now + 3_600_000).await?;
        tokio::time::timeout(LIMIT, node.join(&ticket, name))
            .await
            .context("joining took too long")??;
        say(&format!(
            "2. Alice invites {name} with a one-time ticket; {name} joins and receives the group."
        ));
    }

    say("3. All three go offline and write:");
    let m = meeting.clone();
    edit(&alice, &group, move |s| {
        s.add_story(
            &NewStory {
                title: "Ninety days".into(),
                body: "Ninety days ago I could not picture this morning.".into(),
                ..Default::default()
            },
            now,
        )?;
        s.append_meeting_notes(&m, "Alice: we opened with a moment of quiet.")
    })
    .await?;
    say("   - Alice shares a story and starts the meeting notes.");
    let m = meeting.clone();
    edit(&bob, &group, move |s| {
        let goal = s.add_goal("Walk every morning", Some("30 days"), &[], now)?.to_hex();
        for (date, kind) in [
            ("2026-11-27", CheckInKind::Progress),
            ("2026-11-28", CheckInKind::Setback),
        ] {
            let c = NewCheckIn {
                date: date.into(),
                kind,
                mood: Some(3),
                craving: Some(4),
                halt: vec!["tired".into()],
                note: String::new(),
            };
            s.check_in(&goal, &c, now)?;
        }
        s.append_meeting_notes(&m, "Bob: I had a setback and I am still here.")
    })
    .await?;
    say("   - Bob checks in on a goal (one good day, one setback) and adds to the notes.");
    let m = meeting.clone();
    edit(&carol, &group, move |s| {
        s.append_meeting_notes(&m, "Carol: we read the agreements together.")
    })
    .await?;
    say("   - Carol adds to the same notes at the same time.");

    say("4. They reconcile: Bob and Carol each reach Alice, then Bob once more.");
    let (alice_id, alice_addrs) = alice.address(&group).context("Alice's node is not serving")?;
    for node in [&bob, &carol, &bob] {
        tokio::time::timeout(LIMIT, node.sync_with(group, alice_id, &alice_addrs))
            .await
            .context("sync took too long")??;
    }

    let views = [
        view(&alice, &group).await?,
        view(&bob, &group).await?,
        view(&carol, &group).await?,
    ];
    say("5. What each device now holds:");
    for (name, v) in ["Alice", "Bob", "Carol"].iter().zip(&views) {
        say(&format!("  {name}'s device:\n{v}"));
    }
    let agree = views.iter().all(|v| *v == views[0]);
    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
    if !agree {
        bail!("the three devices did not converge");
    }
    say("All three devices hold the same content, and none of it was ever readable outside them.");
    Ok(())
}
