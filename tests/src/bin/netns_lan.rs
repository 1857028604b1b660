//! The meeting-room test, in network namespaces (needs root; `.ci/run` runs it):
//!
//! Alice and Bob join a group on this machine's loopback, then switch meeting mode on. Each
//! then runs `alongside serve` in its own network namespace — two "laptops" joined by one
//! virtual Ethernet link, no other route, no internet — where the addresses from the ticket
//! lead nowhere. They must find each other by mDNS and sync: a story Alice writes reaches
//! Bob's node. A week later (both nodes started again) they meet the same way, and the
//! endpoint id Alice's laptop announced differs from the first meeting's. Then Alice
//! renews meeting mode for two seconds only: her node ends it by itself, and the command
//! line says it is off. The namespaces and link are removed afterwards, whatever happens.
//!
//! Usage: `netns-lan [PATH_TO_ALONGSIDE]` (default: `target/debug/alongside`). Exits 0 when
//! the story arrived, 1 with the reason otherwise.

use std::path::PathBuf;
use std::time::Duration;

use alongside_tests::netns::{Member, Netns, ip, wait_for};
use anyhow::{Context, Result, ensure};

const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    match run() {
        Ok(()) => println!("netns-lan: members found each other by mDNS and synced"),
        Err(e) => {
            eprintln!("netns-lan: FAILED: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Two namespaces joined by a veth pair (deleting the namespaces removes the pair).
struct Room {
    a: Netns,
    b: Netns,
}

impl Room {
    fn new() -> Result<Room> {
        let id = std::process::id();
        let room = Room {
            a: Netns::create(&format!("al-a-{id}"))?,
            b: Netns::create(&format!("al-b-{id}"))?,
        };
        let (va, vb) = (format!("ala{id}"), format!("alb{id}"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", room.a.name()])?;
        ip(&["link", "set", &vb, "netns", room.b.name()])?;
        for (ns, dev, addr) in [(&room.a, &va, "10.99.0.1/24"), (&room.b, &vb, "10.99.0.2/24")] {
            let ns = ns.name();
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(room)
    }
}

fn run() -> Result<()> {
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/debug/alongside"));
    ensure!(bin.exists(), "no alongside binary at {}", bin.display());
    let tmp = tempfile::tempdir()?;
    let alice = Member {
        bin: &bin,
        dir: tmp.path().join("alice"),
        lan: true,
    };
    let bob = Member {
        bin: &bin,
        dir: tmp.path().join("bob"),
        lan: true,
    };
    alice.ok(&["init", "--name", "alice"])?;
    bob.ok(&["init", "--name", "bob"])?;
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"])?;

    // Joining happens on this machine's loopback: the ticket holds only 127.0.0.1.
    {
        let _node = alice.serve(None)?;
        let ticket = alice.ok(&["invite", "--group", &g])?;
        let ticket = ticket.lines().next().context("no ticket")?.to_string();
        bob.ok(&["join", &ticket, "--as", "Bob"])?;
    }
    alice.ok(&["meeting-mode", "--group", &g, "on"])?;
    bob.ok(&["meeting-mode", "--group", &g, "on"])?;
    let said = alice.ok(&["meeting-mode", "--group", &g])?;
    ensure!(
        said.contains("Meeting mode is on") && said.contains("until"),
        "Alice is told until when: {said}"
    );

    // The meeting room: two namespaces, one link, no route to anywhere else.
    let room = Room::new()?;
    let log = tmp.path().join("alice-node.log");
    for (week, title) in [(1, "Found you on the Wi-Fi"), (2, "Another week, same room")] {
        // Each week both laptops start Alongside again: a new meeting-mode session.
        let _alice_node = alice.serve_logged(Some(room.a.name()), &log)?;
        let _bob_node = bob.serve(Some(room.b.name()))?;
        alice.ok(&[
            "story",
            "add",
            "--group",
            &g,
            "--title",
            title,
            "--body",
            "No internet in this room, and we still meet.",
        ])?;
        wait_for(
            LIMIT,
            &format!("Alice's story of week {week} reaching Bob's node"),
            || Ok(bob.ok(&["story", "list", "--group", &g])?.contains(title).then_some(())),
        )?;
        if week == 2 {
            // What Alice's laptop announced in the room differs from one meeting to the next.
            let announced = meeting_endpoints(&log)?;
            ensure!(announced.len() == 2, "one meeting endpoint per meeting: {announced:?}");
            ensure!(
                announced[0] != announced[1],
                "the same endpoint id was announced at both meetings: {}",
                announced[0]
            );
            // The switch ends by itself: renewed for two seconds only, it is off after them.
            alice.ok(&["meeting-mode", "--group", &g, "on", "--for", "2s"])?;
            wait_for(LIMIT, "Alice's node ending meeting mode by itself", || {
                Ok(read_log(&log)?.contains("meeting mode off").then_some(()))
            })?;
            let said = alice.ok(&["meeting-mode", "--group", &g])?;
            ensure!(
                said.contains("Meeting mode is off"),
                "once its time is up it says off: {said}"
            );
        }
    }
    Ok(())
}

/// The log without terminal colours.
fn read_log(path: &std::path::Path) -> Result<String> {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut clean = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    Ok(clean)
}

/// The meeting endpoint ids a node logged as opened, in order.
fn meeting_endpoints(log: &std::path::Path) -> Result<Vec<String>> {
    Ok(read_log(log)?
        .lines()
        .filter(|l| l.contains("meeting endpoint opened"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("endpoint=")))
        .map(str::to_string)
        .collect())
}
