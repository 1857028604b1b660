//! Benchmarks over real iroh endpoints on loopback (relays, address lookup and port
//! mapping off) with real encrypted stores on disk, each against a baseline measured in the
//! same run where the issue names one.
//!
//! Run: `cargo run --release -p alongside-tests --bin bench-net [-- --edits N] [--only 1|2|3]`
//!
//! 1. Initial sync of the automerge-paper document (one commit per 50 keystrokes) to a newly
//!    joined member, against Automerge's own sync protocol (plaintext, in memory) over the
//!    same kind of iroh connection. Time and bytes, three runs each.
//! 2. Live edits, one every 50 ms: edit on one member → applied (durably) on the other,
//!    p50 and p99; then the same with commits that do not wait for the disk.
//! 3. 20 members write 200 changes each while apart, then all sync (two rounds through the
//!    member whose address they have): time to identical content, total bytes.

use std::time::{Duration, Instant};

use alongside_core::crypto::PassphraseKdf;
use alongside_core::ids::DocKind;
use alongside_core::model::edits::{NewMeeting, NewStory};
use alongside_core::vault::Vault;
use alongside_net::{NetConfig, Node, NodeEvent};
use alongside_tests::trace;
use anyhow::{Context, Result};
use iroh::endpoint::{PortmapperConfig, presets};

const NOW: i64 = 1_795_953_600_000;
const BASELINE_ALPN: &[u8] = b"bench/automerge-sync";

fn main() -> Result<()> {
    let edits = std::env::args()
        .skip_while(|a| a != "--edits")
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let only: Option<u32> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .map(|n| n.parse())
        .transpose()?;
    let wanted = |n: u32| only.is_none_or(|o| o == n);
    rt.block_on(async {
        println!("# bench-net\n");
        if wanted(1) {
            initial_sync().await?;
        }
        if wanted(2) {
            live_latency(edits).await?;
        }
        if wanted(3) {
            twenty_members().await?;
        }
        Ok(())
    })
}

fn far() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + 3_600_000
}

async fn node(root: &std::path::Path, name: &str) -> Result<Node> {
    let vault = Vault::init(&root.join(name), name, b"pw", PassphraseKdf::TEST)?;
    Ok(Node::start(vault, NetConfig::loopback()).await?)
}

fn meeting(title: &str) -> NewMeeting {
    NewMeeting {
        title: title.into(),
        at: "2026-12-01T19:00:00Z".into(),
        place: None,
        facilitator: None,
        agenda: String::new(),
    }
}

/// Runs `f` on `n`'s vault with commits that do not wait for the disk (setup only).
async fn quickly<T: Send + 'static>(
    n: &Node,
    f: impl FnOnce(&mut Vault) -> Result<T, alongside_core::vault::VaultError> + Send + 'static,
) -> Result<T> {
    Ok(n.with_vault(move |v| {
        v.set_durable_commits(false);
        let r = f(v);
        v.set_durable_commits(true);
        r
    })
    .await?)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i]
}

// ---------------------------------------------------------------------------------------

async fn initial_sync() -> Result<()> {
    let data = trace::data_dir().context("benchmark data not found")?;
    let t = trace::load(&data.join("editing-traces/automerge-paper.json.gz"))?;
    let root = tempfile::tempdir()?;
    let alice = node(root.path(), "alice").await?;
    let group = alice
        .with_vault(|v| v.create_group("Paper readers", "Alice", NOW))
        .await?;
    let patches: Vec<(usize, usize, String)> = t.patches.iter().map(|p| (p.pos, p.delete, p.insert.clone())).collect();
    let saved = quickly(&alice, move |v| {
        let m = v.edit(&group, |s| s.add_meeting(&meeting("Paper"), NOW))?.to_hex();
        for chunk in patches.chunks(50) {
            let splices: Vec<(usize, usize, &str)> = chunk.iter().map(|(p, d, i)| (*p, *d, i.as_str())).collect();
            v.edit(&group, |s| s.edit_meeting_notes(&m, &splices))?;
        }
        let s = v.session(&group)?;
        let r = s.replicas().find(|r| r.id().kind == DocKind::Meeting).expect("meeting");
        Ok((r.save(), r.index().len()))
    })
    .await?;
    let (saved, changes) = saved;
    println!("## 1. Initial sync of automerge-paper (per 50 keystrokes: {changes} changes) to a new member\n");
    println!("| run | Alongside join over iroh: time, bytes | Automerge sync over iroh: time, bytes, messages |");
    println!("| --- | --- | --- |");
    let (mut ours_t, mut base_t, mut ours_b, mut base_b) = (Vec::new(), Vec::new(), 0u64, 0u64);
    for run in 0..3 {
        let bob = node(root.path(), &format!("bob{run}")).await?;
        let ticket = alice.invite(group, far()).await?;
        let start = Instant::now();
        let (_, report) = bob.join_measured(&ticket, "Bob").await?;
        let ours = start.elapsed().as_secs_f64();
        let bytes = report.stats.bytes_sent + report.stats.bytes_received;
        let got = bob
            .with_vault(move |v| Ok(v.session(&group)?.meetings()[0].notes.clone()))
            .await?;
        anyhow::ensure!(got == t.end, "the joined member lacks the document");
        bob.shutdown().await;
        let (base, base_bytes, messages) = automerge_baseline(&saved).await?;
        println!(
            "| {run} | {:.3} s, {bytes} B | {base:.3} s, {base_bytes} B, {messages} |",
            ours
        );
        ours_t.push(ours);
        base_t.push(base);
        ours_b = bytes;
        base_b = base_bytes;
    }
    let (o, b) = (median(&mut ours_t), median(&mut base_t));
    println!(
        "\nmedian time {o:.3} s vs {b:.3} s = **{:.2}×** (target ≤ 1.5×); bytes {ours_b} vs {base_b} = **{:.2}×** (target ≤ 1.25×)\n",
        o / b,
        ours_b as f64 / base_b as f64
    );
    alice.shutdown().await;
    Ok(())
}

fn bare_endpoint_builder(seed: u8) -> iroh::endpoint::Builder {
    iroh::Endpoint::builder(presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_address_lookup()
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(iroh::SecretKey::from_bytes(&[seed; 32]))
        .alpns(vec![BASELINE_ALPN.to_vec()])
}

async fn write_msg(send: &mut iroh::endpoint::SendStream, msg: Option<Vec<u8>>) -> Result<u64> {
    let body = msg.unwrap_or_default();
    send.write_all(&(body.len() as u32).to_le_bytes()).await?;
    send.write_all(&body).await?;
    Ok(4 + body.len() as u64)
}

async fn read_msg(recv: &mut iroh::endpoint::RecvStream) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    recv.read_exact(&mut body).await?;
    Ok((!body.is_empty()).then_some(body))
}

/// Automerge's sync protocol between a peer holding `saved` and an empty one, over a fresh
/// iroh connection on loopback: the dialer (empty) and the acceptor take turns, one message
/// each, until neither has anything to say. Returns (seconds, bytes both ways, messages).
async fn automerge_baseline(saved: &[u8]) -> Result<(f64, u64, usize)> {
    use automerge::sync::{Message, State, SyncDoc};
    let server = bare_endpoint_builder(7).bind_addr("127.0.0.1:0")?.bind().await?;
    let client = bare_endpoint_builder(8).bind_addr("127.0.0.1:0")?.bind().await?;
    let addr = iroh::EndpointAddr::new(server.id()).with_ip_addr(server.bound_sockets()[0]);
    let full = automerge::Automerge::load(saved)?;
    let mut want = full.get_heads();
    want.sort();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.context("no connection")?.await?;
            let (mut send, mut recv) = conn.accept_bi().await?;
            let mut state = State::new();
            let mut doc = full;
            loop {
                let Some(msg) = read_msg(&mut recv).await? else {
                    // The dialer had nothing: answer what we have (or nothing) and stop if quiet.
                    let reply = doc.generate_sync_message(&mut state).map(|m| m.encode());
                    let quiet = reply.is_none();
                    write_msg(&mut send, reply).await?;
                    if quiet {
                        break;
                    }
                    continue;
                };
                doc.receive_sync_message(&mut state, Message::decode(&msg)?)?;
                let reply = doc.generate_sync_message(&mut state).map(|m| m.encode());
                write_msg(&mut send, reply).await?;
            }
            send.finish()?;
            conn.closed().await;
            anyhow::Ok(())
        }
    });
    let start = Instant::now();
    let conn = client.connect(addr, BASELINE_ALPN).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut doc = automerge::Automerge::new();
    let mut state = State::new();
    let (mut bytes, mut messages) = (0u64, 0usize);
    loop {
        let out = doc.generate_sync_message(&mut state).map(|m| m.encode());
        let said_nothing = out.is_none();
        messages += usize::from(!said_nothing);
        bytes += write_msg(&mut send, out).await?;
        let reply = read_msg(&mut recv).await?;
        bytes += 4 + reply.as_ref().map_or(0, |r| r.len() as u64);
        match reply {
            Some(m) => {
                messages += 1;
                doc.receive_sync_message(&mut state, Message::decode(&m)?)?;
            }
            None if said_nothing => break,
            None => {}
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    send.finish()?;
    conn.close(0u32.into(), b"done");
    serving.await??;
    let mut got = doc.get_heads();
    got.sort();
    anyhow::ensure!(got == want, "the baseline did not sync");
    server.close().await;
    client.close().await;
    Ok((elapsed, bytes, messages))
}

// ---------------------------------------------------------------------------------------

async fn live_latency(edits: usize) -> Result<()> {
    let root = tempfile::tempdir()?;
    let alice = node(root.path(), "alice").await?;
    let bob = node(root.path(), "bob").await?;
    alice.go_live();
    bob.go_live();
    let group = alice.with_vault(|v| v.create_group("Circle", "Alice", NOW)).await?;
    let m = alice
        .with_vault(move |v| Ok(v.edit(&group, |s| s.add_meeting(&meeting("Live"), NOW))?.to_hex()))
        .await?;
    let mut events = bob.events();
    let ticket = alice.invite(group, far()).await?;
    bob.join(&ticket, "Bob").await?;
    wait_for(&mut events, |e| matches!(e, NodeEvent::CaughtUp { .. })).await?;
    println!("## 2. Live edits every 50 ms, edit → applied on the other member\n");
    println!("| commits | edits | p50 | p99 | max | targets |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for durable in [true, false] {
        for n in [&alice, &bob] {
            n.with_vault(move |v| {
                v.set_durable_commits(durable);
                Ok(())
            })
            .await?;
        }
        let mut lat = Vec::with_capacity(edits);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for i in 0..edits {
            tick.tick().await;
            let m = m.clone();
            let start = Instant::now();
            alice
                .with_vault(move |v| v.edit(&group, |s| s.splice_meeting_notes(&m, i, 0, "x")))
                .await?;
            wait_for(
                &mut events,
                |e| matches!(e, NodeEvent::Applied { doc, .. } if doc.kind == DocKind::Meeting),
            )
            .await?;
            lat.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
        let max = lat.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {edits} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {} |",
            if durable {
                "durable (fsync)"
            } else {
                "in memory (no fsync)"
            },
            if durable {
                "p50 ≤ 20 ms, p99 ≤ 250 ms"
            } else {
                "p99 ≤ 50 ms"
            }
        );
    }
    println!();
    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}

async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    pred: impl Fn(&NodeEvent) -> bool,
) -> Result<()> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow::anyhow!("event feed closed: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .context("timed out waiting for an event")?
}

// ---------------------------------------------------------------------------------------

async fn twenty_members() -> Result<()> {
    const MEMBERS: usize = 20;
    const CHANGES: usize = 200;
    let root = tempfile::tempdir()?;
    let alice = node(root.path(), "m00").await?;
    let group = alice.with_vault(|v| v.create_group("Big circle", "m00", NOW)).await?;
    let m = alice
        .with_vault(move |v| {
            Ok(v.edit(&group, |s| s.add_meeting(&meeting("Shared notes"), NOW))?
                .to_hex())
        })
        .await?;
    let mut nodes = vec![alice];
    for i in 1..MEMBERS {
        let n = node(root.path(), &format!("m{i:02}")).await?;
        let ticket = nodes[0].invite(group, far()).await?;
        n.join(&ticket, &format!("m{i:02}")).await?;
        nodes.push(n);
    }
    // Apart, each writes 100 stories and 100 lines into the same meeting's notes.
    for (i, n) in nodes.iter().enumerate() {
        let m = m.clone();
        quickly(n, move |v| {
            for k in 0..CHANGES / 2 {
                let story = NewStory {
                    title: format!("m{i:02} story {k}"),
                    body: "A day at a time.".into(),
                    ..Default::default()
                };
                v.edit(&group, |s| s.add_story(&story, NOW))?;
                v.edit(&group, |s| s.append_meeting_notes(&m, &format!("m{i:02} line {k}")))?;
            }
            Ok(())
        })
        .await?;
    }
    let (hub, hub_addrs) = nodes[0].address(&group).context("hub not serving")?;
    let start = Instant::now();
    let mut bytes = 0u64;
    let nodes = std::sync::Arc::new(nodes);
    for _round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 1..MEMBERS {
            let (nodes, addrs) = (nodes.clone(), hub_addrs.clone());
            tasks.spawn(async move { nodes[i].sync_with(group, hub, &addrs).await });
        }
        while let Some(r) = tasks.join_next().await {
            let report = r??;
            bytes += report.stats.bytes_sent + report.stats.bytes_received;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut views = Vec::new();
    for n in nodes.iter() {
        views.push(
            n.with_vault(move |v| {
                let s = v.session(&group)?;
                Ok((s.stories().len(), s.meetings()[0].notes.clone()))
            })
            .await?,
        );
    }
    anyhow::ensure!(views.iter().all(|v| *v == views[0]), "the members did not converge");
    anyhow::ensure!(views[0].0 == MEMBERS * CHANGES / 2, "stories missing");
    println!("## 3. {MEMBERS} members, {CHANGES} changes each written apart, then everyone syncs\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| changes in all | {} (plus names and transport announcements) |",
        MEMBERS * CHANGES
    );
    println!("| time to identical content (2 rounds through one member) | {elapsed:.2} s |");
    println!("| bytes on the wire (frames, both directions) | {bytes} |");
    if let Ok(nodes) = std::sync::Arc::try_unwrap(nodes) {
        for n in nodes {
            n.shutdown().await;
        }
    }
    Ok(())
}
