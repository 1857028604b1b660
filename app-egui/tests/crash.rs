//! Killing the real binary at arbitrary moments while it writes never corrupts the store
//! and never loses an item whose command reported success.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{RngExt, SeedableRng};

fn alongside(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = common::alongside(dir, "pw", args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn sigkill_during_writes_loses_only_the_write_in_flight() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    assert!(alongside(&dir, &["init", "--name", "t"]).status().unwrap().success());
    let out = alongside(&dir, &["group", "create", "Circle"]).output().unwrap();
    let group = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Seeded kill moments, spread over the life of a command (a few to ~80 ms).
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261129);
    let mut confirmed = Vec::new();
    for i in 0..20 {
        let title = format!("entry {i}");
        let mut child = alongside(
            &dir,
            &["story", "add", "--group", &group, "--title", &title, "--body", "b"],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..80)));
        let _ = child.kill(); // SIGKILL on Unix
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            confirmed.push(title);
        }
        // Every reopen works, crashed or not.
        let list = alongside(&dir, &["story", "list", "--group", &group, "--json"])
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "store did not reopen: {}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
    let list = alongside(&dir, &["story", "list", "--group", &group, "--json"])
        .output()
        .unwrap();
    let stories: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let titles: Vec<&str> = stories
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    for t in &confirmed {
        assert!(titles.contains(&t.as_str()), "'{t}' was confirmed but is missing");
    }
}
