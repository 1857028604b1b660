//! A member whose device misbehaves cannot make another member's node grow without bound.
//! The real `alongside serve` process is measured — its peak resident memory (`VmHWM`)
//! and its data directory — while Bob's own endpoint, driven by hand with his genuine
//! keys, floods it: units whose dependencies never arrive, then frames as large as the
//! protocol allows, back to back, on several connections at once; sets as large as the
//! protocol allows (operations, documents) that name nothing real; streams it never
//! reads, from Bob and from 200 strangers; then a fifth open conversation, which
//! replaces the oldest.

mod common;

use std::path::Path;

use alongside_core::ids::GroupId;
use alongside_core::model::edits::NewStory;
use alongside_core::sync::Message;
use alongside_core::vault::{Committed, Vault};
use common::{Member, stop};

/// The longest any step may take.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The bound a flooding member is held to, above the node's resident memory before: at
/// most 4 conversations at once (`MAX_ACCEPTED_PER_MEMBER`; a newer one replaces
/// the oldest), each holding at most
/// the frame being read, 16 MiB read ahead or one frame, and the frame being handled
/// with its copies (decoded message, decoded unit, plaintext) — five frames of up to
/// 64 MiB — plus the 64 MiB queue of units waiting for dependencies; and for strangers,
/// at most 64 connections opening at once with 1 MiB of QUIC credit each.
const MEMORY_BOUND_MIB: u64 = 4 * 5 * 64 + 64 + 64;
/// Its data directory may grow by the persisted queue (64 MiB at most) and little else.
const DISK_BOUND_MIB: u64 = 100;

/// `key` of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// A bare iroh endpoint on loopback with `seed` as its key (everything outside off).
async fn endpoint(seed: &[u8; 32]) -> iroh::Endpoint {
    alongside_net::loopback_endpoint(seed).await.unwrap()
}

/// Bob's genuine opening of a conversation: who he is, what he holds, nothing he lacks.
#[derive(Clone)]
struct Opening {
    seed: [u8; 32],
    frames: Vec<Vec<u8>>,
    peer: iroh::EndpointAddr,
}

/// Connects as Bob and opens the conversation properly.
async fn open(
    opening: &Opening,
) -> (
    iroh::Endpoint,
    iroh::endpoint::Connection,
    iroh::endpoint::SendStream,
    iroh::endpoint::RecvStream,
) {
    let ep = endpoint(&opening.seed).await;
    let conn = ep.connect(opening.peer.clone(), alongside_net::ALPN).await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    for frame in &opening.frames {
        send.write_all(frame).await.unwrap();
    }
    (ep, conn, send, recv)
}

/// Connects as Bob, opens the conversation properly, then sends `flood` and finishes.
/// Returns once the node has closed the connection (having read what it would).
async fn flood(opening: Opening, flood: impl Iterator<Item = Vec<u8>>) {
    let (ep, conn, mut send, mut recv) = open(&opening).await;
    // Read (and drop) whatever the node says, so its writes never wait on us.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(Some(_)) = recv.read(&mut buf).await {}
    });
    let sent = async {
        for frame in flood {
            send.write_all(&frame).await?;
        }
        send.finish()?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    // The node may close on us part way (a frame it refuses): that ends the flood.
    let _ = tokio::time::timeout(LIMIT, sent).await.expect("the flood was read");
    tokio::time::timeout(LIMIT, conn.closed())
        .await
        .expect("the node ends the conversation");
    reader.abort();
    ep.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_a_node_cannot_grow_its_memory_or_disk_past_stated_bounds() {
    let root = tempfile::tempdir().unwrap();
    let (alice, bob) = (Member::new(root.path(), "alice"), Member::new(root.path(), "bob"));
    let g = alice.ok(&["group", "create", "Circle", "--as", "Alice"]);
    alice.story(&g, "Alice's own", "Kept as it was.");
    let server = alice.serve();
    let ticket = alice.ok(&["invite", "--group", &g]).lines().next().unwrap().to_string();
    assert_eq!(bob.ok(&["join", &ticket, "--as", "Bob"]), g);
    let group = GroupId::from_hex(&g).unwrap();

    // Bob's device, by hand: 600 short stories written in a row, so every unit after the
    // first waits for it — which never comes — and more of them than the queue takes
    // from one sender (512).
    let mut v = Vault::unlock(&bob.dir, b"pw").unwrap();
    for i in 0..600 {
        let story = NewStory {
            title: format!("Waiting {i}"),
            body: format!("Story {i}, which waits for one that never comes."),
            ..Default::default()
        };
        v.edit(&group, |s| s.add_story(&story, 0)).unwrap();
    }
    let units: Vec<Vec<u8>> = v
        .take_committed()
        .into_iter()
        .filter_map(|c| match c {
            Committed::Unit(_, u) => Some(u.bytes().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(units.len(), 600);
    let alice_at = {
        let me = v.session(&group).unwrap().me();
        v.member_addresses(&group)
            .unwrap()
            .into_iter()
            .find(|a| a.member != me)
            .expect("Alice's address, from the ticket")
    };
    let opening = {
        let s = v.session(&group).unwrap();
        let frames = vec![
            Message::Present {
                group,
                member: s.me(),
                transport: s.transport_binding(),
            }
            .to_frame(),
            Message::Hello {
                group,
                ops: s.op_hashes(),
            }
            .to_frame(),
            Message::Membership {
                ops: Vec::new(),
                grants: Vec::new(),
            }
            .to_frame(),
        ];
        let peer = alice_at.addrs.iter().fold(
            iroh::EndpointAddr::new(iroh::EndpointId::from_bytes(&alice_at.endpoint).unwrap()),
            |addr, a| addr.with_ip_addr(*a),
        );
        Opening {
            seed: *s.transport_secret().seed(),
            frames,
            peer,
        }
    };
    drop(v);

    let pid = server.id();
    let data = alice.dir.clone();
    let (rss_before, disk_before) = (status_kib(pid, "VmRSS:"), dir_bytes(&data));

    // 1. Units whose dependencies never arrive.
    let waiting = units[1..].iter().map(|u| Message::Unit { bytes: u.clone() }.to_frame());
    flood(opening.clone(), waiting).await;
    // 2. Frames as large as the protocol allows (64 MiB), twenty in a row, on six
    //    connections at once (as many of them as the node takes).
    let huge = || {
        (0..20).map(|_| {
            Message::Unit {
                bytes: vec![7; 64 * 1024 * 1024 - 64],
            }
            .to_frame()
        })
    };
    let floods: Vec<_> = (0..6).map(|_| flood(opening.clone(), huge())).collect();
    futures_all(floods).await;
    // 3. Sets as large as the protocol allows: a Hello announcing 65,535 operations
    //    that do not exist, a 1 MiB document-set message of junk, and a document diff
    //    naming 65,535 pairs no one has.
    let mut announcing = opening.clone();
    let Ok(Message::Hello { group, ops }) = Message::decode(&announcing.frames[1][4..]) else {
        panic!("the opening's second frame is Bob's Hello");
    };
    let made_up = (0..u16::MAX as u32).map(|i| {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        alongside_core::ids::OpHash(h)
    });
    let ops: Vec<_> = ops.into_iter().chain(made_up).take(u16::MAX as usize).collect();
    announcing.frames[1] = Message::Hello { group, ops }.to_frame();
    let sets = vec![
        Message::DocSet {
            msg: vec![0x61; 1 << 20],
        }
        .to_frame(),
        Message::DocDiff {
            mine: Vec::new(),
            theirs: (0..u16::MAX as u32).map(|i| [i as u8; 32]).collect(),
        }
        .to_frame(),
    ];
    flood(announcing, sets.into_iter()).await;

    // 4. Streams the node never reads. On a conversation of Bob's, more streams of both
    //    kinds, each trying to send 1 MiB; and 200 strangers (keys no one knows) that open
    //    their first stream, say nothing, and try the same. QUIC's defaults would buffer
    //    all of it here (200 streams of 1.25 MB per connection); the node allows one
    //    stream per connection, and at most 64 connections not yet identified.
    let (ep, conn, _send, _recv) = open(&opening).await;
    let unread = extra_streams(conn.clone(), 20).await;
    assert_eq!(
        unread, 0,
        "a member got {unread} bytes onto streams the node never reads"
    );
    conn.close(0u32.into(), b"done");
    ep.close().await;
    let strangers: Vec<_> = (0..200u32)
        .map(|i| {
            let peer = opening.peer.clone();
            async move {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                seed[31] = 0x5a;
                let ep = endpoint(&seed).await;
                let Ok(conn) = ep.connect(peer, alongside_net::ALPN).await else {
                    return (0, false);
                };
                // (A first stream, opened by writing nothing but a byte of a length.)
                let first = async {
                    let (mut send, recv) = conn.open_bi().await?;
                    send.write_all(&[0]).await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>((send, recv))
                };
                let _first = tokio::time::timeout(STREAM_PATIENCE, first).await;
                let unread = extra_streams(conn.clone(), 5).await;
                let turned_away = matches!(
                    conn.close_reason(),
                    Some(iroh::endpoint::ConnectionError::ApplicationClosed(c))
                        if String::from_utf8_lossy(&c.reason).contains("too many")
                );
                conn.close(0u32.into(), b"done");
                ep.close().await;
                (unread, turned_away)
            }
        })
        .collect();
    let outcomes = futures_all(strangers).await;
    let unread: usize = outcomes.iter().map(|(u, _)| u).sum();
    let turned_away = outcomes.iter().filter(|(_, t)| *t).count();
    println!("strangers turned away while 64 were opening: {turned_away} of 200");
    assert_eq!(
        unread, 0,
        "strangers got {unread} bytes onto streams the node never reads"
    );
    assert!(turned_away > 0, "200 strangers at once, and none was turned away");

    let peak = status_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(rss_before) / 1024;
    let disk_mib = dir_bytes(&data).saturating_sub(disk_before) / (1024 * 1024);
    println!(
        "before: {} MiB resident; peak: {} MiB; data grew {disk_mib} MiB",
        rss_before / 1024,
        peak / 1024
    );
    assert!(grew_mib <= MEMORY_BOUND_MIB, "peak memory grew by {grew_mib} MiB");
    assert!(disk_mib <= DISK_BOUND_MIB, "the data directory grew by {disk_mib} MiB");

    // A member holds at most four conversations at once: a fifth replaces the oldest
    // (a device that crashed leaves connections behind, and must still get through).
    let mut held = Vec::new();
    for _ in 0..5 {
        let (ep, conn, send, mut recv) = open(&opening).await;
        // (The node's answer shows the conversation was taken.)
        let mut first = [0u8; 4];
        recv.read_exact(&mut first).await.unwrap();
        // (Both halves kept open: dropping one would end the conversation.)
        held.push((ep, conn, send, recv));
    }
    match tokio::time::timeout(LIMIT, held[0].1.closed()).await.unwrap() {
        iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(u64::from(c.error_code), u64::from(alongside_net::close_code::PROTOCOL));
            assert!(String::from_utf8_lossy(&c.reason).contains("replaced"), "{c:?}");
        }
        other => panic!("expected the oldest to be closed, got {other}"),
    }
    assert!(held[1..].iter().all(|(_, conn, _, _)| conn.close_reason().is_none()));
    for (ep, conn, _, _) in held {
        conn.close(0u32.into(), b"done");
        ep.close().await;
    }

    // The node still serves, and applied nothing of the flood.
    let titles = alice.ok(&["story", "list", "--group", &g]);
    assert!(
        titles.contains("Alice's own") && !titles.contains("Waiting"),
        "{titles}"
    );
    stop(server);
}

/// How long a sender waits for the node to take a stream or its data.
const STREAM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens `n` more streams of each kind on `conn` at once and tries to send 1 MiB on each;
/// returns how many bytes the node's flow control let through within [`STREAM_PATIENCE`].
async fn extra_streams(conn: iroh::endpoint::Connection, n: usize) -> usize {
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..2 * n {
        let (conn, sent) = (conn.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let attempt = async {
                let mut send = if i % 2 == 0 {
                    conn.open_bi().await?.0
                } else {
                    conn.open_uni().await?
                };
                for _ in 0..16 {
                    send.write_all(&[9u8; 64 * 1024]).await?;
                    sent.fetch_add(64 * 1024, std::sync::atomic::Ordering::SeqCst);
                }
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            };
            let _ = tokio::time::timeout(STREAM_PATIENCE, attempt).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    sent.load(std::sync::atomic::Ordering::SeqCst)
}

/// Runs every future at once; what they returned, in order.
async fn futures_all<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(all: Vec<F>) -> Vec<T> {
    let tasks: Vec<_> = all.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
