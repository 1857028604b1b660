//! Who may take a node's time, against a real node on loopback: strangers cannot lock
//! members out, one endpoint gets only its share, a removed member is heard out once at a
//! time, an outsider cannot tell which group an endpoint serves, and a node bound to one
//! address listens and advertises only there (`docs/PROTOCOL.md`, "Who may connect";
//! `docs/RELIABILITY.md`, "Bounded resources").

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alongside_core::crypto::SigningSecret;
use alongside_core::group::{MembershipSecrets, TransportBinding};
use alongside_core::ids::{GroupId, MemberId, OpHash};
use alongside_core::invite::Ticket;
use alongside_core::sync::Message;
use alongside_net::close_code;
use common::{LIMIT, NOW, in_an_hour, join_all, node, on};
use iroh::endpoint::{Connection, ConnectionError, RecvStream, SendStream};

/// How long a stranger may take to say something (`STRANGER_PRESENT_TIME` in
/// `net/src/gate.rs`): a refusal well before it was not a timeout.
const STRANGER_PRESENT_TIME: Duration = Duration::from_secs(3);

/// A bare iroh endpoint on loopback with key `seed`, driven by hand.
async fn raw_endpoint(seed: &[u8; 32]) -> iroh::Endpoint {
    alongside_net::loopback_endpoint(seed).await.unwrap()
}

/// The address of endpoint `id` at `addrs`.
fn endpoint_addr(id: &[u8; 32], addrs: &[SocketAddr]) -> iroh::EndpointAddr {
    addrs.iter().fold(
        iroh::EndpointAddr::new(iroh::EndpointId::from_bytes(id).unwrap()),
        |addr, a| addr.with_ip_addr(*a),
    )
}

/// A key no one knows, numbered.
fn stranger_seed(i: u32, tag: u8) -> [u8; 32] {
    let mut seed = [tag; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed
}

/// The close code and reason of a connection that ended.
fn how_closed(reason: &ConnectionError) -> (u64, String) {
    match reason {
        ConnectionError::ApplicationClosed(c) => {
            (u64::from(c.error_code), String::from_utf8_lossy(&c.reason).into_owned())
        }
        other => panic!("expected the node to close the connection, got {other}"),
    }
}

/// Dials `to` from `ep`, opens the one stream and sends one byte of a frame's length, as
/// a stranger holding its place would; returns the connection and its stream.
async fn hold_a_place(ep: &iroh::Endpoint, to: iroh::EndpointAddr) -> Option<(Connection, SendStream)> {
    let conn = ep.connect(to, alongside_net::ALPN).await.ok()?;
    let (mut send, _recv) = conn.open_bi().await.ok()?;
    send.write_all(&[0]).await.ok()?;
    Some((conn, send))
}

/// Whether a fresh stranger is turned away at once because every stranger's place is
/// taken (otherwise it waits until its time to present runs out).
async fn pool_is_full(to: &iroh::EndpointAddr, probe: u32) -> bool {
    let ep = raw_endpoint(&stranger_seed(probe, 0x9e)).await;
    let conn = ep.connect(to.clone(), alongside_net::ALPN).await.unwrap();
    let (code, reason) = how_closed(&tokio::time::timeout(LIMIT, conn.closed()).await.unwrap());
    ep.close().await;
    code == u64::from(close_code::PROTOCOL) && reason == "too many connections opening at once"
}

/// Waits until a fresh stranger is turned away because the pool is full (a probe that
/// comes in the moment one of the flood reconnects takes that place instead: try again).
async fn wait_until_full(to: &iroh::EndpointAddr, probe: &mut u32) {
    let full = async {
        loop {
            *probe += 1;
            if pool_is_full(to, *probe).await {
                return;
            }
        }
    };
    tokio::time::timeout(LIMIT, full)
        .await
        .expect("the strangers fill the pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_holding_every_opening_place_do_not_lock_a_member_out() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let bob = node(root.path(), "bob").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    join_all(&alice, group, &[(&bob, "Bob")]).await;
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let to = endpoint_addr(&alice_id, &alice_addrs);

    // 32 strangers, two connections each (64, every stranger's place), each opening its
    // stream, sending one byte and reconnecting as soon as it is cut off: the flood of
    // the issue.
    let mut flood = tokio::task::JoinSet::new();
    let mut endpoints = Vec::new();
    for i in 0..32 {
        let ep = raw_endpoint(&stranger_seed(i, 0x5a)).await;
        for _ in 0..2 {
            let (ep, to) = (ep.clone(), to.clone());
            flood.spawn(async move {
                loop {
                    if let Some((conn, _send)) = hold_a_place(&ep, to.clone()).await {
                        conn.closed().await;
                    }
                }
            });
        }
        endpoints.push(ep);
    }
    let mut probe = 0;
    wait_until_full(&to, &mut probe).await;

    // Bob, whose endpoint Alice knows, gets through and syncs while they hold it.
    let started = Instant::now();
    let synced = tokio::time::timeout(LIMIT, bob.sync_with(group, alice_id, &alice_addrs))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(synced.is_ok(), "a member was locked out by strangers: {synced:?}");
    println!("Bob synced in {took:?} while strangers held every place");
    // (And they still hold it: the flood went on throughout.)
    wait_until_full(&to, &mut probe).await;
    flood.abort_all();
    for ep in endpoints {
        ep.close().await;
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stranger_endpoint_gets_only_its_share_and_a_joiner_still_gets_through() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let carol = node(root.path(), "carol").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    alice.serve_group(group).await.unwrap();
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let to = endpoint_addr(&alice_id, &alice_addrs);

    // Mallory opens three connections at once from one endpoint id and says nothing.
    let mallory = raw_endpoint(&stranger_seed(1, 0x4d)).await;
    let started = Instant::now();
    let attempts: Vec<_> = (0..3)
        .map(|_| {
            let (ep, to) = (mallory.clone(), to.clone());
            tokio::spawn(async move {
                let (conn, _send) = hold_a_place(&ep, to).await.expect("the handshake completes");
                let reason = tokio::time::timeout(LIMIT, conn.closed()).await.unwrap();
                (how_closed(&reason), started.elapsed())
            })
        })
        .collect();

    // Meanwhile Carol, a stranger too but with a ticket, joins at once.
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    let joining = Instant::now();
    let joined = tokio::time::timeout(LIMIT, carol.join(&ticket, "Carol")).await.unwrap();
    let join_took = joining.elapsed();
    assert_eq!(joined.unwrap(), group);
    println!("Carol joined in {join_took:?} while Mallory held her share");
    assert!(join_took < STRANGER_PRESENT_TIME, "the joiner waited {join_took:?}");

    let mut outcomes = Vec::new();
    for a in attempts {
        outcomes.push(a.await.unwrap());
    }
    let busy: Vec<_> = outcomes
        .iter()
        .filter(|((_, reason), _)| reason == "too many connections from this endpoint")
        .collect();
    assert_eq!(busy.len(), 1, "one of three is over the share of two: {outcomes:?}");
    assert!(busy[0].1 < STRANGER_PRESENT_TIME, "turned away at once: {outcomes:?}");
    for ((code, reason), after) in outcomes.iter().filter(|o| !busy.contains(o)) {
        assert_eq!(*code, u64::from(close_code::PROTOCOL));
        assert_eq!(reason, "nothing said in time");
        assert!(*after < STRANGER_PRESENT_TIME * 2, "closed after {after:?}");
    }
    mallory.close().await;
    alice.shutdown().await;
    carol.shutdown().await;
}

/// Carol's genuine bindings to `count` endpoint keys of her own making, with their seeds.
async fn bindings_of(
    n: &alongside_net::Node,
    group: GroupId,
    count: u32,
) -> (MemberId, Vec<OpHash>, Vec<([u8; 32], TransportBinding)>) {
    on(n, move |v| {
        let s = v.session(&group).unwrap();
        let bindings = (0..count)
            .map(|i| {
                let seed = stranger_seed(i, 0xca);
                let key = SigningSecret::from_seed(&seed);
                (seed, TransportBinding::new(&group, &s.secrets().signing, &key))
            })
            .collect();
        (s.me(), s.op_hashes(), bindings)
    })
    .await
}

/// A call of a removed member, presenting a genuine binding and saying hello.
struct Call {
    ep: iroh::Endpoint,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
}

/// How a call went: heard (the node answered with a frame, and still listens) or
/// refused (closed without a word, after how long).
enum Outcome {
    Heard(Call),
    Refused((u64, String), Duration),
}

async fn call_as_removed(to: iroh::EndpointAddr, seed: [u8; 32], hello: Vec<Vec<u8>>, started: Instant) -> Outcome {
    let ep = raw_endpoint(&seed).await;
    let conn = ep.connect(to, alongside_net::ALPN).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    for frame in hello {
        send.write_all(&frame).await.unwrap();
    }
    let mut length = [0u8; 4];
    let outcome = tokio::select! {
        read = recv.read_exact(&mut length) => read.ok(),
        _ = conn.closed() => None,
    };
    match outcome {
        Some(()) => Outcome::Heard(Call { ep, conn, send, recv }),
        None => {
            let reason = tokio::time::timeout(LIMIT, conn.closed()).await.unwrap();
            ep.close().await;
            Outcome::Refused(how_closed(&reason), started.elapsed())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_calling_many_times_at_once_is_heard_out_once_at_a_time() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let carol = node(root.path(), "carol").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    join_all(&alice, group, &[(&carol, "Carol")]).await;
    let (carol_id, carol_ops, bindings) = bindings_of(&carol, group, 9).await;
    on(&alice, move |v| {
        v.edit(&group, |s| s.remove_member(&carol_id, NOW)).unwrap()
    })
    .await;
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let to = endpoint_addr(&alice_id, &alice_addrs);
    let hello = |binding: TransportBinding| {
        vec![
            Message::Present {
                group,
                member: carol_id,
                transport: binding,
            }
            .to_frame(),
            Message::Hello {
                group,
                ops: carol_ops.clone(),
            }
            .to_frame(),
        ]
    };

    // Carol, removed, calls from eight endpoint keys at once, each with a genuine binding,
    // and never sends the operations that would end her hear-out.
    let started = Instant::now();
    let calls: Vec<_> = bindings[..8]
        .iter()
        .map(|(seed, binding)| tokio::spawn(call_as_removed(to.clone(), *seed, hello(*binding), started)))
        .collect();
    let mut heard = Vec::new();
    let mut refused = Vec::new();
    for c in calls {
        match tokio::time::timeout(LIMIT, c).await.unwrap().unwrap() {
            Outcome::Heard(call) => heard.push(call),
            Outcome::Refused(how, after) => refused.push((how, after)),
        }
    }
    assert_eq!(heard.len(), 1, "one hear-out at a time, not {}", heard.len());
    assert_eq!(refused.len(), 7);
    for ((code, reason), after) in &refused {
        assert_eq!(
            (*code, reason.as_str()),
            (u64::from(close_code::REFUSED), "no longer a member")
        );
        assert!(*after < STRANGER_PRESENT_TIME, "refused at once, not after {after:?}");
    }
    let mut call = heard.pop().unwrap();
    assert!(call.conn.close_reason().is_none(), "the hear-out was still going on");

    // Her operations end the hear-out as usual: she is refused, and may be heard again.
    let ops = Message::Membership {
        ops: Vec::new(),
        grants: Vec::new(),
    };
    call.send.write_all(&ops.to_frame()).await.unwrap();
    let (code, _) = how_closed(&tokio::time::timeout(LIMIT, call.conn.closed()).await.unwrap());
    assert_eq!(code, u64::from(close_code::REFUSED));
    let _ = call.recv.stop(0u32.into());
    call.ep.close().await;
    let (seed, binding) = bindings[8];
    match call_as_removed(to, seed, hello(binding), Instant::now()).await {
        Outcome::Heard(again) => again.ep.close().await,
        Outcome::Refused(how, _) => panic!("the next call is heard out again, not refused: {how:?}"),
    }
    alice.shutdown().await;
    carol.shutdown().await;
}

/// What an outsider (key `seed`) sending `frame` to `to` is told.
async fn refusal_of(to: &iroh::EndpointAddr, seed: &[u8; 32], frame: Vec<u8>) -> (u64, String) {
    let ep = raw_endpoint(seed).await;
    let conn = ep.connect(to.clone(), alongside_net::ALPN).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame).await.unwrap();
    let how = how_closed(&tokio::time::timeout(LIMIT, conn.closed()).await.unwrap());
    ep.close().await;
    how
}

/// An outsider's join request for `group` with an invite key of its own making (so the
/// proof holds), and a presentation as a member of its own making.
fn outsider_frames(group: GroupId, inviter: [u8; 32], seed: &[u8; 32]) -> Vec<(&'static str, Vec<u8>)> {
    use rand::SeedableRng;
    let secrets = MembershipSecrets::generate(&mut rand::rngs::StdRng::seed_from_u64(12));
    let transport = TransportBinding::new(&group, &secrets.signing, &SigningSecret::from_seed(seed));
    let made_up = Ticket {
        group,
        inviter,
        addrs: Vec::new(),
        relay: None,
        invite_secret: [5; 32],
        expires_at_ms: in_an_hour(),
    };
    let outsider = SigningSecret::from_seed(seed).public();
    let join = Message::JoinRequest {
        group,
        invite: made_up.invite_public(),
        proof: made_up.prove(&outsider),
        keys: secrets.public_keys(&group),
        transport,
    };
    let present = Message::Present {
        group,
        member: secrets.member(),
        transport,
    };
    let hello = Message::Hello { group, ops: Vec::new() };
    vec![
        ("a join request with a made-up invitation", join.to_frame()),
        ("a presentation as a made-up member", present.to_frame()),
        ("a hello", hello.to_frame()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_is_told_the_same_whichever_group_id_it_names() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let served = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    alice.serve_group(served).await.unwrap();
    let (alice_id, alice_addrs) = alice.address(&served).unwrap();
    let to = endpoint_addr(&alice_id, &alice_addrs);
    let seed = [0x0e; 32];
    let elsewhere = GroupId([0x77; 32]);
    let right = outsider_frames(served, alice_id, &seed);
    let wrong = outsider_frames(elsewhere, alice_id, &seed);
    for ((what, at_served), (_, at_elsewhere)) in right.into_iter().zip(wrong) {
        let told_served = refusal_of(&to, &seed, at_served).await;
        let told_elsewhere = refusal_of(&to, &seed, at_elsewhere).await;
        assert_eq!(told_served, told_elsewhere, "{what}: the served group id is told apart");
        assert_eq!(told_served.0, u64::from(close_code::REFUSED), "{what}");
    }
    alice.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_bound_to_loopback_listens_and_advertises_only_loopback() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    alice.serve_group(group).await.unwrap();
    let bound = alice.bound_sockets(&group);
    assert!(!bound.is_empty());
    assert!(
        bound.iter().all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST),
        "bound to 127.0.0.1, it listens on {bound:?}"
    );
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    assert!(!ticket.addrs.is_empty());
    assert!(
        ticket.addrs.iter().all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST),
        "the ticket carries {:?}",
        ticket.addrs
    );
    alice.shutdown().await;
}
