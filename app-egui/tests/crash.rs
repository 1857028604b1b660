//! Killing the real binary at arbitrary moments while it writes and syncs never corrupts
//! the store and never loses an item whose command reported success.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Member, stop};
use rand::{RngExt, SeedableRng};

/// The titles of the stories `m` holds in group `g`.
fn titles(m: &Member, g: &str) -> BTreeSet<String> {
    m.json(&["story", "list", "--group", g, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sigkill_fifty_times_while_writing_and_syncing_loses_only_what_was_in_flight() {
    let root = tempfile::tempdir().unwrap();
    let (alice, bob) = (Member::new(root.path(), "alice"), Member::new(root.path(), "bob"));
    // Bob's node runs throughout; Alice joins his group.
    let g = bob.ok(&["group", "create", "Circle", "--as", "Bob"]);
    let server = bob.serve();
    let ticket = bob.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    assert_eq!(alice.ok(&["join", &ticket, "--as", "Alice"]), g);

    // How long each kind of command takes here and now, uncut (the kill moments below
    // are drawn over that span, so a fast or a loaded machine cuts alike).
    // (The median of three runs: one slow run on a busy machine must not set the span.)
    let timed = |args: &[&str]| {
        let mut runs: Vec<u64> = (0..3)
            .map(|_| {
                let start = Instant::now();
                alice.ok(args);
                start.elapsed().as_millis() as u64
            })
            .collect();
        runs.sort();
        runs[1]
    };
    let write_ms = timed(&["story", "add", "--group", &g, "--title", "A first", "--body", "b"]);
    let sync_ms = timed(&["sync", "--group", &g, "--timeout", "10s"]);

    // Alice's commands are killed 50 times at seeded moments, from at once to twice as
    // long as such a command takes; half are writes, half syncs with Bob while he writes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261130);
    let mut confirmed: BTreeSet<String> = BTreeSet::new();
    let mut bobs: BTreeSet<String> = BTreeSet::new();
    // Commands cut short while writing and while syncing.
    let (mut cut_writing, mut cut_syncing) = (0, 0);
    for i in 0..50 {
        if rng.random_bool(0.5) {
            let title = format!("from Bob {i}");
            bob.story(&g, &title, "Written while Alice was busy.");
            bobs.insert(title);
        }
        let syncing = i % 2 == 1;
        let title = format!("from Alice {i}");
        let args: Vec<&str> = if syncing {
            vec!["sync", "--group", &g, "--timeout", "10s"]
        } else {
            vec![
                "story",
                "add",
                "--group",
                &g,
                "--title",
                &title,
                "--body",
                "Kept, or refused.",
            ]
        };
        // What a successful sync must have brought: Bob's stories written before it began.
        let before_sync = bobs.clone();
        let mut child = alice
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = if syncing {
            0..2 * sync_ms + 1
        } else {
            0..2 * write_ms + 1
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(wait)));
        if child.try_wait().unwrap().is_none() {
            *(if syncing { &mut cut_syncing } else { &mut cut_writing }) += 1;
        }
        let _ = child.kill(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        if status.success() && syncing {
            confirmed.extend(before_sync);
        } else if status.success() {
            confirmed.insert(title);
        }
        // The store opens again, whatever happened, and holds what was confirmed.
        let held = titles(&alice, &g);
        let lost: Vec<&String> = confirmed.difference(&held).collect();
        assert!(lost.is_empty(), "after step {i}: confirmed but missing: {lost:?}");
    }
    // Both kinds of command were cut short, and some writes finished.
    assert!(
        cut_writing >= 5 && cut_syncing >= 5,
        "{cut_writing} writes and {cut_syncing} syncs cut short"
    );
    assert!(confirmed.iter().any(|t| t.starts_with("from Alice")));

    // Nothing is corrupt: a last sync brings the two stores to the same stories.
    alice.ok(&["sync", "--group", &g, "--timeout", "30s"]);
    let held = titles(&alice, &g);
    assert!(confirmed.is_subset(&held) && bobs.is_subset(&held));
    assert_eq!(titles(&bob, &g), held);
    stop(server);
}
