//! Three members, three processes, three data directories, real iroh on loopback with
//! everything outside off: Alice serves; Bob and Carol join with tickets, everyone writes
//! while apart, and `sync` brings them to identical content.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Member, stop};

#[test]
fn three_members_invite_join_write_apart_and_sync_to_identical_content() {
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| Member::new(root.path(), n));
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"]);
    let meeting = alice.ok(&[
        "meeting",
        "add",
        "--group",
        &g,
        "--title",
        "Weekly",
        "--at",
        "2026-12-01T19:00:00Z",
    ]);
    let server = alice.serve();

    // Inviting while the node runs goes through it; the ticket is on the first line.
    let ticket_bob = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    let ticket_carol = alice
        .ok(&["invite", "--group", &g, "--expires", "1h"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(ticket_bob.starts_with("alongside1"));
    assert_eq!(bob.ok(&["join", &ticket_bob, "--as", "Bob"]), g);
    // Right after join exits, Alice's member list shows Bob by name.
    let names: Vec<String> = alice
        .json(&["member", "list", "--group", &g, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["Alice", "Bob"]);
    assert_eq!(carol.ok(&["join", &ticket_carol, "--as", "Carol"]), g);
    // A used ticket is refused.
    let dave = Member::new(root.path(), "dave");
    let used = dave.fails(&["join", &ticket_bob, "--as", "Dave"]);
    assert!(used.contains("already used"), "{used}");

    // Everyone writes while apart, including into the same meeting's notes.
    alice.story(&g, "From Alice", "Alice's week.");
    alice.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--append",
        "Alice: opened with quiet.",
    ]);
    bob.ok(&[
        "story",
        "add",
        "--group",
        &g,
        "--title",
        "From Bob",
        "--body",
        "Bob's week.",
        "--warn",
        "grief",
    ]);
    bob.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--append",
        "Bob: shared a milestone.",
    ]);
    let goal = carol.ok(&["goal", "add", "--group", &g, "--title", "Sleep by eleven"]);
    carol.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--setback",
        "--mood",
        "2",
    ]);
    carol.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--append",
        "Carol: read the agreements.",
    ]);

    // Bob and Carol reconcile with Alice (the only address they know), then Bob again.
    bob.ok(&["sync", "--group", &g]);
    carol.ok(&["sync", "--group", &g]);
    bob.ok(&["sync", "--group", &g]);
    let a = alice.content(&g);
    assert_eq!(bob.content(&g), a);
    assert_eq!(carol.content(&g), a);
    assert_eq!(a["stories"].as_array().unwrap().len(), 2);
    assert_eq!(a["members"].as_array().unwrap().len(), 3);
    let notes = a["meetings"][0]["notes"].as_str().unwrap();
    for line in ["Alice: opened", "Bob: shared", "Carol: read"] {
        assert!(notes.contains(line), "notes lack '{line}': {notes}");
    }

    // With Alice's node stopped, sync says plainly that nobody was reachable.
    stop(server);
    let alone = bob.fails(&["sync", "--group", &g, "--timeout", "5s"]);
    assert!(alone.contains("could not reach anyone"), "{alone}");
}

#[test]
fn an_expired_ticket_is_refused_by_the_inviter_even_if_its_text_is_altered() {
    let root = tempfile::tempdir().unwrap();
    let (alice, eve) = (Member::new(root.path(), "alice"), Member::new(root.path(), "eve"));
    let g = alice.ok(&["group", "create", "Circle"]);
    let server = alice.serve();
    let text = alice
        .ok(&["invite", "--group", &g, "--expires", "1s"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut ticket = alongside_core::invite::Ticket::from_text(&text).unwrap();
    // Wait out the real expiry (time passing, not sync), then claim a later one.
    while alongside_now() <= ticket.expires_at_ms {
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = eve.fails(&["join", &text]);
    assert!(err.contains("expired"), "{err}");
    ticket.expires_at_ms += 3_600_000;
    let err = eve.fails(&["join", &ticket.to_text()]);
    assert!(err.contains("expired"), "{err}");
    assert_eq!(
        alice
            .json(&["member", "list", "--group", &g, "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    stop(server);
}

fn alongside_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn the_demo_shows_three_members_converging_without_any_setup() {
    let out = Command::new(env!("CARGO_BIN_EXE_alongside"))
        .arg("demo")
        .env_remove("ALONGSIDE_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("All three devices hold the same content"), "{text}");
    for line in ["Alice: we opened", "Bob: I had a setback", "Carol: we read"] {
        assert_eq!(text.matches(line).count(), 3, "each device shows '{line}' once: {text}");
    }
}

/// Polls `check` (a condition on what a command prints) until it holds, for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn while_two_nodes_serve_a_story_written_on_one_appears_on_the_other_without_a_sync() {
    let root = tempfile::tempdir().unwrap();
    let (alice, bob) = (Member::new(root.path(), "alice"), Member::new(root.path(), "bob"));
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"]);
    let alice_node = alice.serve();
    let ticket = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    bob.ok(&["join", &ticket, "--as", "Bob"]);
    let bob_node = bob.serve();

    // Alice's command goes through her node, which pushes the story over the live
    // connection Bob's node keeps open; Bob's command reads from his node.
    alice.story(&g, "Pushed live", "No sync needed.");
    eventually("Bob's node holds Alice's story", || {
        bob.ok(&["story", "list", "--group", &g]).contains("Pushed live")
    });
    bob.story(&g, "And back", "Hello, Alice.");
    eventually("Alice's node holds Bob's story", || {
        alice.ok(&["story", "list", "--group", &g]).contains("And back")
    });
    stop(bob_node);
    stop(alice_node);
}

#[test]
fn a_removed_member_is_refused_told_so_and_nothing_written_after_crosses() {
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| Member::new(root.path(), n));
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"]);
    let server = alice.serve();
    for (who, name) in [(&bob, "Bob"), (&carol, "Carol")] {
        let ticket = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
        assert_eq!(who.ok(&["join", &ticket, "--as", name]), g);
    }
    carol.ok(&["sync", "--group", &g]);

    // Alice (through her running node) removes Carol, then writes.
    let said = String::from_utf8(alice.run(&["member", "remove", "--group", &g, "Carol"]).stderr).unwrap();
    assert!(said.contains("keep what they had already synced"), "{said}");
    alice.story(&g, "After Carol left", "For the group as it is now.");

    // Bob syncs and reads it.
    bob.ok(&["sync", "--group", &g]);
    assert!(bob.ok(&["story", "list", "--group", &g]).contains("After Carol left"));
    assert_eq!(bob.member_names(&g), ["Alice", "Bob"]);

    // Carol's sync is refused, and she gets nothing but the news: her device now knows
    // she was removed, and says so when she tries to write.
    let refused = carol.fails(&["sync", "--group", &g, "--timeout", "10s"]);
    assert!(refused.contains("not a member"), "{refused}");
    assert!(!carol.ok(&["story", "list", "--group", &g]).contains("After Carol left"));
    let told = carol.fails(&[
        "story",
        "add",
        "--group",
        &g,
        "--title",
        "Carol writes on",
        "--body",
        "Nobody should receive this.",
    ]);
    assert!(told.contains("no longer a member"), "{told}");
    let refused = carol.fails(&["sync", "--group", &g, "--timeout", "10s"]);
    assert!(refused.contains("not a member"), "{refused}");
    bob.ok(&["sync", "--group", &g]);
    for m in [&alice, &bob] {
        assert!(!m.ok(&["story", "list", "--group", &g]).contains("Carol writes on"));
    }
    stop(server);
}

#[test]
fn in_a_group_that_keeps_history_closed_a_newcomer_reads_only_what_came_after_joining() {
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = ["alice", "bob"].map(|n| Member::new(root.path(), n));
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"]);
    alice.story(&g, "Before Bob joined", "Only for those who were here.");
    alice.ok(&[
        "agreement",
        "set",
        "--group",
        &g,
        "--text",
        "What is said here stays here.",
    ]);
    let said = String::from_utf8(
        alice
            .run(&["group", "settings", "--group", &g, "--history", "since-join"])
            .stderr,
    )
    .unwrap();
    assert!(said.contains("only what is written after they join"), "{said}");

    let server = alice.serve();
    let ticket = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    assert_eq!(bob.ok(&["join", &ticket, "--as", "Bob"]), g);
    bob.ok(&["sync", "--group", &g]);
    assert!(!bob.ok(&["story", "list", "--group", &g]).contains("Before Bob joined"));
    assert!(
        bob.ok(&["agreement", "show", "--group", &g])
            .contains("What is said here stays here.")
    );
    assert!(bob.ok(&["group", "list"]).contains("Tuesday Circle"));

    // What is written afterwards reaches him, and his writing reaches Alice.
    alice.story(&g, "After Bob joined", "Welcome, Bob.");
    bob.story(&g, "Hello", "Glad to be here.");
    bob.ok(&["sync", "--group", &g]);
    let bobs = bob.ok(&["story", "list", "--group", &g]);
    assert!(
        bobs.contains("After Bob joined") && !bobs.contains("Before Bob joined"),
        "{bobs}"
    );
    let alices = alice.ok(&["story", "list", "--group", &g]);
    assert!(
        ["Before Bob joined", "After Bob joined", "Hello"]
            .iter()
            .all(|t| alices.contains(t)),
        "{alices}"
    );
    for m in [&alice, &bob] {
        assert_eq!(m.member_names(&g), ["Alice", "Bob"]);
    }
    stop(server);
}

#[test]
fn a_removed_member_cannot_rejoin_with_a_ticket_made_before_and_invitations_can_be_seen_and_withdrawn() {
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = ["alice", "bob"].map(|n| Member::new(root.path(), n));
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"]);
    let server = alice.serve();
    let first = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    assert_eq!(bob.ok(&["join", &first, "--as", "Bob"]), g);
    // Alice makes a week-long ticket for someone else, and Bob sees it.
    let spare = alice
        .ok(&["invite", "--group", &g, "--expires", "7d"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let listed = alice.json(&["invitations", "list", "--group", &g, "--json"]);
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["used", "open"]);

    // Removing Bob says that an invitation is still open and how to withdraw it.
    let said = String::from_utf8(alice.run(&["member", "remove", "--group", &g, "Bob"]).stderr).unwrap();
    assert!(
        said.contains("can still be used") && said.contains("invitations revoke"),
        "{said}"
    );
    let said = String::from_utf8(alice.run(&["invitations", "revoke", "--group", &g, "--all"]).stderr).unwrap();
    assert!(said.contains("no longer work"), "{said}");
    let listed = alice.json(&["invitations", "list", "--group", &g, "--json"]);
    assert_eq!(listed[1]["state"], "withdrawn");

    // Bob, removed, tries the spare ticket from a fresh profile: refused, and not added.
    let again = Member::new(root.path(), "bob-again");
    let err = again.fails(&["join", &spare, "--as", "Bob"]);
    assert!(err.contains("withdrawn"), "{err}");
    assert_eq!(alice.member_names(&g), ["Alice"]);
    stop(server);
}
