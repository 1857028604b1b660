//! The meeting-room test, in network namespaces (needs root; `.ci/run` runs it):
//!
//! Alice and Bob join a group on this machine's loopback, then switch meeting mode on. Each
//! then runs `alongside serve` in its own network namespace — two "laptops" joined by one
//! virtual Ethernet link, no other route, no internet — where the addresses from the ticket
//! lead nowhere. They must find each other by mDNS and sync: a story Alice writes reaches
//! Bob's node. The namespaces and link are removed afterwards, whatever happens.
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

    // The meeting room: two namespaces, one link, no route to anywhere else.
    let room = Room::new()?;
    let _alice_node = alice.serve(Some(room.a.name()))?;
    let _bob_node = bob.serve(Some(room.b.name()))?;
    alice.ok(&[
        "story",
        "add",
        "--group",
        &g,
        "--title",
        "Found you on the Wi-Fi",
        "--body",
        "No internet in this room, and we still meet.",
    ])?;
    wait_for(LIMIT, "Alice's story reaching Bob's node", || {
        Ok(bob
            .ok(&["story", "list", "--group", &g])?
            .contains("Found you on the Wi-Fi")
            .then_some(()))
    })?;
    Ok(())
}
