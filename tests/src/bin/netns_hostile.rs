//! Three members on a hostile network (needs root; `.ci/run` runs it).
//!
//! Alice, Bob and Carol join a group on this machine's loopback. Then each runs
//! `alongside serve` in a network namespace of its own that has nothing but a loopback
//! interface; the only way between them is our impairment proxy
//! (`alongside_tests::impair`), which loses 20 % of datagrams and holds the rest
//! 200 ms ± 50 ms, so they also arrive out of order. Bob and Carol know Alice's address
//! from their tickets, and that address now leads through the proxy; Alice learns theirs
//! when they call.
//!
//! 1. Each member writes a story; all three converge.
//! 2. The link between Alice and Bob is cut. All three write; Bob also schedules sixteen
//!    meetings, each with an agenda of 8,000 random characters.
//! 3. The link heals. Once three quarters of Bob's meetings reached Alice, it is cut again,
//!    for longer than QUIC's idle timeout, so the connection dies mid-transfer.
//! 4. The link heals again. All three converge on every item (nothing is lost), and
//!    finishing the transfer takes fewer bytes from Bob to Alice than the interrupted
//!    attempt did. That attempt delivered three quarters of the meetings; sending all of
//!    them again would take more than it, finishing only the rest about a third. (Bytes are
//!    counted on the wire, at the proxy: QUIC's handshake, retransmissions and the
//!    reconciliation round included, under the same impairment both times.)
//!
//! It also checks that the proxy carried the traffic (both directions of both links).
//!
//! Usage: `netns-hostile [PATH_TO_ALONGSIDE]` (default: `target/debug/alongside`);
//! `HOSTILE_SEED=n` picks the proxy's seed (default 1). Exits 0 with a summary when all
//! holds, 1 with the reason otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alongside_core::invite::Ticket;
use alongside_tests::impair::{Impairment, Proxy};
use alongside_tests::netns::{Member, Netns, wait_for};
use anyhow::{Context, Result, ensure};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How long the members get to converge after a heal.
const LIMIT: Duration = Duration::from_secs(240);
/// How long the second cut lasts: longer than QUIC's idle timeout (30 s).
const HOLD: Duration = Duration::from_secs(35);
/// Bob's meetings written while cut off.
const MEETINGS: usize = 16;
/// Random characters in each meeting's agenda (6 bits each: 64 symbols).
const AGENDA: usize = 8_000;

const HOSTILE: Impairment = Impairment {
    loss: 0.2,
    delay: Duration::from_millis(200),
    jitter: Duration::from_millis(50),
};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn main() {
    match run() {
        Ok(summary) => println!("netns-hostile: {summary}"),
        Err(e) => {
            eprintln!("netns-hostile: FAILED: {e:#}");
            std::process::exit(1);
        }
    }
}

/// What every member must end up holding.
#[derive(Default)]
struct Expected {
    stories: Vec<String>,
    meetings: Vec<String>,
}

impl Expected {
    /// Whether `m` holds everything expected so far.
    fn held_by(&self, m: &Member<'_>, group: &str) -> Result<bool> {
        let stories = m.ok(&["story", "list", "--group", group])?;
        if !self.stories.iter().all(|t| stories.contains(t.as_str())) {
            return Ok(false);
        }
        let meetings = m.ok(&["meeting", "list", "--group", group])?;
        Ok(self.meetings.iter().all(|t| meetings.contains(t.as_str())))
    }

    fn converge(&self, members: &[&Member<'_>], group: &str, what: &str) -> Result<Duration> {
        let start = Instant::now();
        wait_for(LIMIT, what, || {
            for m in members {
                if !self.held_by(m, group)? {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })?;
        Ok(start.elapsed())
    }
}

fn story(m: &Member<'_>, group: &str, expected: &mut Expected, title: &str) -> Result<()> {
    m.ok(&[
        "story",
        "add",
        "--group",
        group,
        "--title",
        title,
        "--body",
        "Written on a bad line.",
    ])?;
    expected.stories.push(title.to_string());
    Ok(())
}

fn run() -> Result<String> {
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/debug/alongside"));
    ensure!(bin.exists(), "no alongside binary at {}", bin.display());
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    println!("netns-hostile: seed {seed} (HOSTILE_SEED={seed} picks it again)");
    let tmp = tempfile::tempdir()?;
    let member = |name: &str| Member {
        bin: &bin,
        dir: tmp.path().join(name),
        lan: false,
    };
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    for (m, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        m.ok(&["init", "--name", name])?;
    }
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"])?;

    // Joining happens on this machine's loopback: the tickets hold 127.0.0.1 and Alice's port.
    let port = {
        let _node = alice.serve(None)?;
        let mut port = None;
        for (m, name) in [(&bob, "Bob"), (&carol, "Carol")] {
            let ticket = alice.ok(&["invite", "--group", &g])?;
            let ticket = ticket.lines().next().context("no ticket")?.to_string();
            let parsed = Ticket::from_text(&ticket).context("unreadable ticket")?;
            port = parsed.addrs.iter().find(|a| a.is_ipv4()).map(|a| a.port());
            m.ok(&["join", &ticket, "--as", name])?;
        }
        port.context("the ticket holds no IPv4 address")?
    };

    let id = std::process::id();
    let nets = [
        Netns::create(&format!("ah-a-{id}"))?,
        Netns::create(&format!("ah-b-{id}"))?,
        Netns::create(&format!("ah-c-{id}"))?,
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let names: Vec<&str> = nets.iter().map(Netns::name).collect();
    let proxy = Proxy::start(runtime.handle().clone(), seed, HOSTILE, &names);
    // Alice restarts on the same port (a node keeps its port), now in her namespace.
    proxy.forward(ALICE, port, &[BOB, CAROL])?;
    let _nodes = [
        alice.serve(Some(names[ALICE]))?,
        bob.serve(Some(names[BOB]))?,
        carol.serve(Some(names[CAROL]))?,
    ];
    let everyone = [&alice, &bob, &carol];
    let mut expected = Expected::default();

    // 1. Everyone writes over the bad links.
    story(&alice, &g, &mut expected, "Alice: the first week")?;
    story(&bob, &g, &mut expected, "Bob: what helped today")?;
    story(&carol, &g, &mut expected, "Carol: a quiet evening")?;
    let first = expected.converge(&everyone, &g, "the first three stories reaching everyone")?;

    // 2. Bob is cut off; everyone writes.
    proxy.cut(ALICE, BOB);
    story(&alice, &g, &mut expected, "Alice: while Bob was away")?;
    story(&carol, &g, &mut expected, "Carol: still here")?;
    story(&bob, &g, &mut expected, "Bob: written offline")?;
    let mut rng = StdRng::seed_from_u64(seed);
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for i in 0..MEETINGS {
        let title = format!("Bob's meeting {i:02}");
        let agenda: String = (0..AGENDA)
            .map(|_| SYMBOLS[rng.random_range(0..SYMBOLS.len())] as char)
            .collect();
        bob.ok(&[
            "meeting",
            "add",
            "--group",
            &g,
            "--title",
            &title,
            "--at",
            "2026-12-01T19:00:00+01:00",
            "--agenda",
            &agenda,
        ])?;
        expected.meetings.push(title);
    }

    // 3. The link heals, and is cut again once three quarters of Bob's meetings reached Alice.
    let bobs_at_alice = || -> Result<usize> {
        Ok(alice
            .ok(&["meeting", "list", "--group", &g])?
            .matches("Bob's meeting")
            .count())
    };
    let bytes_at_heal = proxy.carried(BOB, ALICE).bytes;
    proxy.heal(ALICE, BOB);
    wait_for(LIMIT, "three quarters of Bob's meetings reaching Alice", || {
        let n = bobs_at_alice()?;
        Ok((n >= MEETINGS * 3 / 4).then_some(n))
    })?;
    proxy.cut(ALICE, BOB);
    // A partition that outlasts QUIC's idle timeout: the connection dies mid-transfer.
    std::thread::sleep(HOLD);
    let arrived = bobs_at_alice()?;
    ensure!(
        arrived < MEETINGS,
        "all of Bob's meetings arrived before the cut: the transfer was not interrupted"
    );
    let bytes_at_cut = proxy.carried(BOB, ALICE).bytes;

    // 4. It heals: everyone converges, and what arrived is not sent again.
    proxy.heal(ALICE, BOB);
    let last = expected.converge(&everyone, &g, "every story and meeting reaching everyone")?;
    let attempt = bytes_at_cut - bytes_at_heal;
    let resumed = proxy.carried(BOB, ALICE).bytes - bytes_at_cut;
    ensure!(
        resumed < attempt,
        "finishing the transfer took {resumed} bytes from Bob to Alice, more than the interrupted \
         attempt ({attempt} bytes), which had delivered {arrived} of {MEETINGS} meetings: what had \
         arrived was sent again"
    );

    // The traffic went through the proxy, both ways on both links.
    for (a, b) in [(ALICE, BOB), (BOB, ALICE), (ALICE, CAROL), (CAROL, ALICE)] {
        let c = proxy.carried(a, b);
        ensure!(
            c.packets > 0 && c.dropped > 0,
            "the proxy carried nothing from {} to {}",
            names[a],
            names[b]
        );
    }
    let (ab, ba) = (proxy.carried(ALICE, BOB), proxy.carried(BOB, ALICE));
    Ok(format!(
        "three members converged through the proxy (20 % loss, 200±50 ms): first stories in {first:.1?}, \
         everything after the second heal in {last:.1?}; {arrived} of Bob's {MEETINGS} meetings \
         had arrived when the transfer was cut ({attempt} bytes), and the rest took {resumed} bytes; Alice→Bob {} packets ({} dropped), Bob→Alice {} packets ({} dropped)",
        ab.packets, ab.dropped, ba.packets, ba.dropped
    ))
}
