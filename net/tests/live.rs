//! Live nodes on loopback: once connected, what one member writes reaches the others
//! without anyone running `sync`; nodes that drop redial; groups made while running are
//! served. Every wait is for an event or a condition, with a timeout.

mod common;

use alongside_core::vault::Vault;
use alongside_net::{Node, NodeEvent};
use common::{LIMIT, NOW, in_an_hour, join_all, node, on, story, titles};
use tokio::sync::broadcast::Receiver;

async fn live_node(dir: &std::path::Path, label: &str) -> Node {
    let node = node(dir, label).await;
    node.go_live();
    node
}

/// Waits until `check` holds on `n`'s profile, looking again after each of its events.
async fn until(
    n: &Node,
    events: &mut Receiver<NodeEvent>,
    what: &str,
    check: impl Fn(&mut Vault) -> bool + Clone + Send + 'static,
) {
    let wait = async {
        loop {
            if on(n, check.clone()).await {
                return;
            }
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Waits for an event matching `pred`.
async fn event(events: &mut Receiver<NodeEvent>, what: &str, pred: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event feed closed: {e}"),
            }
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_connected_what_one_member_writes_reaches_the_other_without_a_sync() {
    let root = tempfile::tempdir().unwrap();
    let alice = live_node(root.path(), "alice").await;
    let bob = live_node(root.path(), "bob").await;
    let mut alice_events = alice.events();
    let mut bob_events = bob.events();

    // A group made while the node runs is served at once.
    let group = on(&alice, |v| v.create_group("Tuesday Circle", "Alice", NOW).unwrap()).await;
    event(
        &mut alice_events,
        "the new group to be served",
        |e| matches!(e, NodeEvent::Serving { group: g } if *g == group),
    )
    .await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    tokio::time::timeout(LIMIT, bob.join(&ticket, "Bob"))
        .await
        .unwrap()
        .unwrap();
    // Bob's node knows Alice's address from the ticket and keeps a connection open.
    let alice_id = on(&alice, move |v| v.session(&group).unwrap().me()).await;
    event(
        &mut bob_events,
        "Bob to connect to Alice",
        |e| matches!(e, NodeEvent::Connected { member, .. } if *member == alice_id),
    )
    .await;
    assert_eq!(bob.connected(&group), vec![alice_id]);

    // Alice writes; Bob has it without anyone asking.
    on(&alice, move |v| {
        v.edit(&group, |s| s.add_story(&story("Live from Alice"), NOW)).unwrap()
    })
    .await;
    until(&bob, &mut bob_events, "Bob holds Alice's story", move |v| {
        titles(v, group) == ["Live from Alice"]
    })
    .await;
    // And the other way.
    on(&bob, move |v| {
        v.edit(&group, |s| s.add_story(&story("Live from Bob"), NOW)).unwrap()
    })
    .await;
    until(&alice, &mut alice_events, "Alice holds Bob's story", move |v| {
        titles(v, group) == ["Live from Alice", "Live from Bob"]
    })
    .await;

    // A third member joins through Alice while Bob is connected: Bob learns of her and her
    // name through the live connection.
    let carol = live_node(root.path(), "carol").await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    tokio::time::timeout(LIMIT, carol.join(&ticket, "Carol"))
        .await
        .unwrap()
        .unwrap();
    until(&bob, &mut bob_events, "Bob sees Carol by name", move |v| {
        v.session(&group).unwrap().members().iter().any(|m| m.name == "Carol")
    })
    .await;

    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_restarts_is_found_again_and_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let alice = live_node(root.path(), "alice").await;
    let bob = live_node(root.path(), "bob").await;
    let mut bob_events = bob.events();
    let group = on(&alice, |v| v.create_group("Circle", "Alice", NOW).unwrap()).await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    bob.join(&ticket, "Bob").await.unwrap();
    let alice_id = on(&alice, move |v| v.session(&group).unwrap().me()).await;
    event(
        &mut bob_events,
        "Bob to connect to Alice",
        |e| matches!(e, NodeEvent::Connected { member, .. } if *member == alice_id),
    )
    .await;

    // Alice's device goes away; Bob writes meanwhile.
    alice.shutdown().await;
    event(
        &mut bob_events,
        "Bob to notice Alice left",
        |e| matches!(e, NodeEvent::Disconnected { member, .. } if *member == alice_id),
    )
    .await;
    on(&bob, move |v| {
        v.edit(&group, |s| s.add_story(&story("While you were away"), NOW))
            .unwrap()
    })
    .await;

    // Alice comes back on a new port. Bob's book has only her old address, but she
    // remembered where Bob connected from, so her node dials him, and both catch up.
    let alice = live_node(root.path(), "alice").await;
    let mut alice_events = alice.events();
    until(&alice, &mut alice_events, "Alice catches up with Bob", move |v| {
        titles(v, group) == ["While you were away"]
    })
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_connected_is_cut_off_and_refused_from_then_on() {
    let root = tempfile::tempdir().unwrap();
    let alice = live_node(root.path(), "alice").await;
    let group = on(&alice, |v| v.create_group("Tuesday Circle", "Alice", NOW).unwrap()).await;
    let alice_id = on(&alice, move |v| v.session(&group).unwrap().me()).await;
    let bob = live_node(root.path(), "bob").await;
    let carol = live_node(root.path(), "carol").await;
    let mut carol_events = carol.events();
    let mut alice_events = alice.events();
    join_all(&alice, group, &[(&bob, "Bob"), (&carol, "Carol")]).await;
    let carol_id = on(&carol, move |v| v.session(&group).unwrap().me()).await;
    // Carol's node keeps a live connection to Alice once joined. (The join itself was a
    // connection too, so wait for the live one on both sides.)
    let wait = async {
        while !(alice.connected(&group).contains(&carol_id) && carol.connected(&group).contains(&alice_id)) {
            let _ = alice_events.recv().await;
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .expect("Alice and Carol connected");
    let mut alice_events = alice.events();

    // Alice removes Carol while they are connected: Carol's device hears of it, and the
    // connection ends.
    on(&alice, move |v| {
        v.edit(&group, |s| s.remove_member(&carol_id, NOW)).unwrap()
    })
    .await;

    until(
        &carol,
        &mut carol_events,
        "Carol's device knows she was removed",
        move |v| !v.session(&group).unwrap().membership().is_member(&carol_id),
    )
    .await;
    event(
        &mut alice_events,
        "Carol's connection to end",
        |e| matches!(e, NodeEvent::Disconnected { member, .. } if *member == carol_id),
    )
    .await;
    assert!(!alice.connected(&group).contains(&carol_id));

    // What Alice writes now reaches Bob, not Carol; Carol's attempts are refused.
    on(&alice, move |v| {
        v.edit(&group, |s| s.add_story(&story("After Carol left"), NOW))
            .unwrap()
    })
    .await;
    let mut bob_events = bob.events();
    until(&bob, &mut bob_events, "Bob holds the story", move |v| {
        titles(v, group) == ["After Carol left"]
    })
    .await;
    let refused = tokio::time::timeout(LIMIT, carol.sync_all(group)).await.unwrap();
    assert!(
        matches!(refused, Err(alongside_net::NetError::NotAMember)),
        "{refused:?}"
    );
    assert!(on(&carol, move |v| titles(v, group)).await.is_empty());
    for n in [alice, bob, carol] {
        n.shutdown().await;
    }
}
