//! Real iroh endpoints on loopback (relays, lookup and port mapping off), real stores on
//! disk: invitations, joining, offline edits and reconciliation between two nodes.

mod common;

use alongside_core::invite::Ticket;
use alongside_core::vault::Vault;
use alongside_net::NetError;
use common::{LIMIT, NOW, in_an_hour, join_all, node, on, story};

/// A bare iroh endpoint on loopback with the given key (everything outside off), driven
/// by hand to play a misbehaving or foreign peer.
async fn raw_endpoint(seed: &[u8; 32]) -> iroh::Endpoint {
    alongside_net::loopback_endpoint(seed).await.unwrap()
}

/// The address of endpoint `id` at `addrs`.
fn endpoint_addr(id: &[u8; 32], addrs: &[std::net::SocketAddr]) -> iroh::EndpointAddr {
    addrs.iter().fold(
        iroh::EndpointAddr::new(iroh::EndpointId::from_bytes(id).unwrap()),
        |addr, a| addr.with_ip_addr(*a),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_invites_a_friend_who_joins_and_both_reconcile_after_writing_offline() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let bob = node(root.path(), "bob").await;
    let group = on(&alice, move |v| {
        let g = v.create_group("Tuesday Circle", "Alice", NOW).unwrap();
        v.edit(&g, |s| s.add_story(&story("Ninety days"), NOW)).unwrap();
        g
    })
    .await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    let text = ticket.to_text();
    let parsed = Ticket::from_text(&text).unwrap();

    // Bob joins: he gets the group's history, and Alice sees him by name at once.
    let joined = tokio::time::timeout(LIMIT, bob.join(&parsed, "Bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined, group);
    on(&bob, move |v| {
        let s = v.session(&group).unwrap();
        assert_eq!(s.name(), "Tuesday Circle");
        assert_eq!(s.stories().len(), 1);
    })
    .await;
    on(&alice, move |v| {
        let names: Vec<String> = v
            .session(&group)
            .unwrap()
            .members()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, vec!["Alice".to_string(), "Bob".to_string()]);
    })
    .await;

    // The ticket cannot be used twice.
    let carol = node(root.path(), "carol").await;
    let again = tokio::time::timeout(LIMIT, carol.join(&parsed, "Carol")).await.unwrap();
    assert!(
        matches!(again, Err(NetError::Refused(r)) if r.contains("already used")),
        "{again:?}"
    );

    // Both write while apart, then Bob dials Alice.
    for (n, who) in [(&alice, "Alice"), (&bob, "Bob")] {
        on(n, move |v| {
            v.edit(&group, |s| s.add_story(&story(&format!("{who} offline")), NOW + 1))
                .unwrap();
        })
        .await;
    }
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let report = tokio::time::timeout(LIMIT, bob.sync_with(group, alice_id, &alice_addrs))
        .await
        .unwrap()
        .unwrap();
    assert!(report.stats.reconcile_rounds >= 1);
    let views = move |v: &mut Vault| {
        let s = v.session(&group).unwrap();
        (s.stories(), s.members().into_iter().map(|m| m.name).collect::<Vec<_>>())
    };
    let (a, b) = (on(&alice, views).await, on(&bob, views).await);
    assert_eq!(a, b);
    assert_eq!(a.0.len(), 3);

    alice.shutdown().await;
    bob.shutdown().await;
    carol.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tickets_and_strangers_are_refused_before_any_group_data() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let eve = node(root.path(), "eve").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    // An expired ticket is refused by the joiner itself and by the inviter.
    let mut expired = alice.invite(group, in_an_hour()).await.unwrap();
    expired.expires_at_ms = 1;
    let r = tokio::time::timeout(LIMIT, eve.join(&expired, "Eve")).await.unwrap();
    assert!(matches!(r, Err(NetError::Refused(_))), "{r:?}");
    let short = alice.invite(group, 1).await.unwrap();
    let mut forged_expiry = short.clone();
    forged_expiry.expires_at_ms = in_an_hour();
    let r = tokio::time::timeout(LIMIT, eve.join(&forged_expiry, "Eve"))
        .await
        .unwrap();
    assert!(matches!(r, Err(NetError::Refused(m)) if m.contains("expired")), "{r:?}");
    // A made-up invite key is unknown to the inviter.
    let mut unknown = alice.invite(group, in_an_hour()).await.unwrap();
    unknown.invite_secret = [7; 32];
    let r = tokio::time::timeout(LIMIT, eve.join(&unknown, "Eve")).await.unwrap();
    assert!(matches!(r, Err(NetError::Refused(_))), "{r:?}");
    // A stranger dialing without a ticket gets nothing: it is not even a member to sync.
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let r = tokio::time::timeout(LIMIT, eve.sync_with(group, alice_id, &alice_addrs))
        .await
        .unwrap();
    assert!(r.is_err());
    on(&eve, move |v| {
        assert!(v.group_ids().unwrap().is_empty(), "Eve learned nothing");
    })
    .await;
    on(&alice, move |v| {
        assert_eq!(v.session(&group).unwrap().members().len(), 1);
    })
    .await;
    alice.shutdown().await;
    eve.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_endpoint_is_refused_with_a_protocol_error_and_gets_no_frame() {
    use alongside_core::sync::Message;

    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    alice.serve_group(group).await.unwrap();
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let stranger = raw_endpoint(&[42; 32]).await;
    let addr = endpoint_addr(&alice_id, &alice_addrs);
    let conn = tokio::time::timeout(LIMIT, stranger.connect(addr, alongside_net::ALPN))
        .await
        .unwrap()
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // It pretends to be a member and says hello.
    let hello = Message::Hello { group, ops: vec![] }.to_frame();
    send.write_all(&hello).await.unwrap();
    let reason = tokio::time::timeout(LIMIT, conn.closed()).await.unwrap();
    match reason {
        iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(u64::from(c.error_code), u64::from(alongside_net::close_code::REFUSED));
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let got = recv.read_to_end(1 << 20).await;
    assert!(got.map(|b| b.is_empty()).unwrap_or(true), "no group data was sent");
    // A stranger announcing a huge first frame is cut off at once, before it is buffered.
    let conn = tokio::time::timeout(
        LIMIT,
        stranger.connect(endpoint_addr(&alice_id, &alice_addrs), alongside_net::ALPN),
    )
    .await
    .unwrap()
    .unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&(60u32 * 1024 * 1024).to_le_bytes()).await.unwrap();
    send.write_all(&[0u8; 1024]).await.unwrap();
    match tokio::time::timeout(LIMIT, conn.closed()).await.unwrap() {
        iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(u64::from(c.error_code), u64::from(alongside_net::close_code::PROTOCOL));
        }
        other => panic!("expected a protocol error, got {other}"),
    }
    stranger.close().await;
    alice.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_join_proof_from_another_endpoint_is_refused_and_the_ticket_stays_usable() {
    use alongside_core::group::{MembershipSecrets, TransportBinding};
    use alongside_core::sync::Message;

    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let bob = node(root.path(), "bob").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    // Mallory saw a proof made for Bob's endpoint [9; 32] and replays it from her own.
    let proof_for_someone_else = ticket.prove(&[9; 32]);
    let mallory_key = [43u8; 32];
    let mallory = raw_endpoint(&mallory_key).await;
    let secrets = MembershipSecrets::generate(&mut alongside_tests_rng());
    let request = Message::JoinRequest {
        group,
        invite: ticket.invite_public(),
        proof: proof_for_someone_else,
        keys: secrets.public_keys(&group),
        transport: TransportBinding::new(
            &group,
            &secrets.signing,
            &alongside_core::crypto::SigningSecret::from_seed(&mallory_key),
        ),
    };
    let addr = endpoint_addr(&ticket.inviter, &ticket.addrs);
    let conn = mallory.connect(addr, alongside_net::ALPN).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&request.to_frame()).await.unwrap();
    match tokio::time::timeout(LIMIT, conn.closed()).await.unwrap() {
        iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(u64::from(c.error_code), u64::from(alongside_net::close_code::REFUSED));
        }
        other => panic!("expected a refusal, got {other}"),
    }
    mallory.close().await;
    // The refused attempt did not burn the ticket: Bob can still use it.
    let joined = tokio::time::timeout(LIMIT, bob.join(&ticket, "Bob")).await.unwrap();
    assert_eq!(joined.unwrap(), group);
    alice.shutdown().await;
    bob.shutdown().await;
}

fn alongside_tests_rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sending_bad_frames_is_cut_off_and_the_node_keeps_serving() {
    use alongside_core::sync::Message;

    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let bob = node(root.path(), "bob").await;
    let group = on(&alice, move |v| {
        let g = v.create_group("Circle", "Alice", NOW).unwrap();
        v.edit(&g, |s| s.add_story(&story("Kept safe"), NOW)).unwrap();
        g
    })
    .await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    bob.join(&ticket, "Bob").await.unwrap();
    let heads_before = on(&alice, move |v| {
        v.session(&group)
            .unwrap()
            .replicas()
            .map(|r| (r.id(), r.heads()))
            .collect::<Vec<_>>()
    })
    .await;
    // Bob's own transport key, driven by hand: a member, but a misbehaving one. He
    // presents himself properly, then misbehaves.
    let (bob_seed, hello) = on(&bob, move |v| {
        let s = v.session(&group).unwrap();
        let present = Message::Present {
            group,
            member: s.me(),
            transport: s.transport_binding(),
        };
        (*s.transport_secret().seed(), present.to_frame())
    })
    .await;
    let (alice_id, alice_addrs) = alice.address(&group).unwrap();
    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![9, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5]),
        ("oversized", u32::MAX.to_le_bytes().to_vec()),
        (
            "truncated",
            Message::Hello { group, ops: vec![] }.to_frame()[..20].to_vec(),
        ),
        (
            "out of order",
            Message::Need {
                doc: alongside_core::ids::DocId::group_doc(&group),
                heads: vec![],
            }
            .to_frame(),
        ),
    ];
    for (what, frame) in bad_frames {
        let ep = raw_endpoint(&bob_seed).await;
        let addr = endpoint_addr(&alice_id, &alice_addrs);
        let conn = ep.connect(addr, alongside_net::ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&hello).await.unwrap();
        send.write_all(&frame).await.unwrap();
        let _ = send.finish();
        match tokio::time::timeout(LIMIT, conn.closed()).await.unwrap() {
            iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(
                    u64::from(c.error_code),
                    u64::from(alongside_net::close_code::PROTOCOL),
                    "{what}"
                );
            }
            other => panic!("{what}: expected a protocol error, got {other}"),
        }
        ep.close().await;
    }
    let heads_after = on(&alice, move |v| {
        v.session(&group)
            .unwrap()
            .replicas()
            .map(|r| (r.id(), r.heads()))
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(heads_before, heads_after, "nothing the bad peer sent was applied");
    // Alice's node still serves: Bob's real node syncs.
    let report = tokio::time::timeout(LIMIT, bob.sync_with(group, alice_id, &alice_addrs))
        .await
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Dials `id` at `addrs` from an endpoint with key `seed`, presents `binding` as `member`,
/// says it holds the operations `ops` (as a member who does not know it was removed
/// would), and returns how the other side closed the connection and the messages it sent.
async fn present(
    seed: &[u8; 32],
    id: &[u8; 32],
    addrs: &[std::net::SocketAddr],
    group: alongside_core::ids::GroupId,
    member: alongside_core::ids::MemberId,
    transport: alongside_core::group::TransportBinding,
    ops: Vec<alongside_core::ids::OpHash>,
) -> (iroh::endpoint::ConnectionError, Vec<alongside_core::sync::Message>) {
    use alongside_core::sync::Message;
    let ep = raw_endpoint(seed).await;
    let conn = tokio::time::timeout(LIMIT, ep.connect(endpoint_addr(id, addrs), alongside_net::ALPN))
        .await
        .unwrap()
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let frames = [
        Message::Present {
            group,
            member,
            transport,
        },
        Message::Hello { group, ops },
        Message::Membership {
            ops: Vec::new(),
            grants: Vec::new(),
        },
    ];
    for m in frames {
        send.write_all(&m.to_frame()).await.unwrap();
    }
    let reason = tokio::time::timeout(LIMIT, conn.closed()).await.unwrap();
    let got = recv.read_to_end(1 << 20).await.unwrap_or_default();
    let mut said = Vec::new();
    let mut rest = &got[..];
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        said.push(Message::decode(&rest[4..4 + len]).unwrap());
        rest = &rest[4 + len..];
    }
    ep.close().await;
    (reason, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_removal_endpoints_change_and_the_removed_member_is_refused_at_old_and_new() {
    use alongside_core::sync::Message;
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    alice.go_live();
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    let (bob, carol) = (node(root.path(), "bob").await, node(root.path(), "carol").await);
    join_all(&alice, group, &[(&bob, "Bob"), (&carol, "Carol")]).await;
    let (old_id, old_addrs) = alice.address(&group).unwrap();
    let (carol_id, carol_seed, carol_binding, carol_ops) = on(&carol, move |v| {
        let s = v.session(&group).unwrap();
        (
            s.me(),
            *s.transport_secret().seed(),
            s.transport_binding(),
            s.op_hashes(),
        )
    })
    .await;
    let alice_id = on(&alice, move |v| v.session(&group).unwrap().me()).await;

    // Alice removes Carol: the key rotates, and Alice's node moves to a new endpoint.
    let mut events = alice.events();
    on(&alice, move |v| {
        v.edit(&group, |s| s.remove_member(&carol_id, NOW)).unwrap()
    })
    .await;
    let moved = async {
        loop {
            if alice.address(&group).is_some_and(|(id, _)| id != old_id) {
                return;
            }
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(LIMIT, moved)
        .await
        .expect("Alice's endpoint changes");
    let (new_id, new_addrs) = alice.address(&group).unwrap();

    // Carol, presenting her genuine binding, is refused at the old endpoint (still
    // answering during its grace period) and at the new one (had she learned its id).
    // Before that she is heard out: she is told the operations that say she is gone,
    // and nothing else.
    for (id, addrs) in [(old_id, &old_addrs), (new_id, &new_addrs)] {
        let (reason, said) = present(
            &carol_seed,
            &id,
            addrs,
            group,
            carol_id,
            carol_binding,
            carol_ops.clone(),
        )
        .await;
        match reason {
            iroh::endpoint::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(u64::from(c.error_code), u64::from(alongside_net::close_code::REFUSED));
            }
            other => panic!("expected a refusal, got {other}"),
        }
        let told: Vec<usize> = said
            .iter()
            .map(|m| match m {
                Message::Hello { .. } => 0,
                Message::Membership { ops, grants } if grants.is_empty() => ops.len(),
                other => panic!("a departed member was sent {other:?}"),
            })
            .collect();
        assert_eq!(told.len(), 2, "a hello and the operations she lacks: {said:?}");
        assert!(told[1] > 0, "the operations that say she is gone");
    }
    // Bob, who knows only the old id, reaches Alice there, learns the new one, and syncs
    // with it.
    tokio::time::timeout(LIMIT, bob.sync_all(group)).await.unwrap().unwrap();
    let knows = on(&bob, move |v| v.session(&group).unwrap().member_for_endpoint(&new_id)).await;
    assert_eq!(knows, Some(alice_id));
    tokio::time::timeout(LIMIT, bob.sync_with(group, new_id, &new_addrs))
        .await
        .unwrap()
        .unwrap();
    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_facilitators_removing_each_other_both_go_though_one_removal_arrives_only_as_its_author_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let group = on(&alice, move |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    let (bob, carol) = (node(root.path(), "bob").await, node(root.path(), "carol").await);
    join_all(&alice, group, &[(&bob, "Bob"), (&carol, "Carol")]).await;
    let alice_id = on(&alice, move |v| v.session(&group).unwrap().me()).await;
    let bob_id = on(&bob, move |v| v.session(&group).unwrap().me()).await;
    // Alice makes Bob a facilitator; everyone hears of it.
    on(&alice, move |v| {
        v.edit(&group, |s| {
            s.change_role(&bob_id, alongside_core::membership::Role::Facilitator, NOW)
        })
        .unwrap()
    })
    .await;
    for n in [&bob, &carol] {
        tokio::time::timeout(LIMIT, n.sync_all(group)).await.unwrap().unwrap();
    }
    let (bob_at, bob_addrs) = bob.address(&group).unwrap();
    let (carol_at, carol_addrs) = carol.address(&group).unwrap();

    // Offline, each removes the other.
    on(&alice, move |v| {
        v.edit(&group, |s| s.remove_member(&bob_id, NOW)).unwrap()
    })
    .await;
    on(&bob, move |v| {
        v.edit(&group, |s| s.remove_member(&alice_id, NOW)).unwrap()
    })
    .await;
    // Carol syncs with Bob first: to her, Alice is gone and Bob stays.
    tokio::time::timeout(LIMIT, carol.sync_with(group, bob_at, &bob_addrs))
        .await
        .unwrap()
        .unwrap();
    let members = move |v: &mut Vault| {
        let m = v.session(&group).unwrap().membership().clone();
        (m.is_member(&alice_id), m.is_member(&bob_id))
    };
    assert_eq!(on(&carol, members).await, (false, true));

    // Alice, not knowing, dials Carol: she is refused, but her removal of Bob is heard
    // first, so both removals count at Carol, and Alice learns she is gone.
    let refused = tokio::time::timeout(LIMIT, alice.sync_with(group, carol_at, &carol_addrs))
        .await
        .unwrap();
    assert!(matches!(refused, Err(NetError::NotAMember)), "{refused:?}");
    assert_eq!(on(&carol, members).await, (false, false));
    assert_eq!(on(&alice, members).await, (false, false));
    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
}
