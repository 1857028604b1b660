//! A fault inside one command never disables a node: a panic in the middle of a vault
//! command drops what that command half-did and the node goes on serving, from what is on
//! disk. Every wait is for an event or a condition, with a timeout.

mod common;

use alongside_core::group::GroupError;
use alongside_core::vault::{Vault, VaultError};
use alongside_net::{NetError, Node};
use common::{LIMIT, NOW, in_an_hour, node, on, story, titles};

/// Waits until `check` holds on `n`'s profile, looking again after each of its events.
async fn until(n: &Node, what: &str, check: impl Fn(&mut Vault) -> bool + Clone + Send + 'static) {
    let mut events = n.events();
    let wait = async {
        loop {
            if on(n, check.clone()).await {
                return;
            }
            if let Err(tokio::sync::broadcast::error::RecvError::Closed) = events.recv().await {
                panic!("event feed closed");
            }
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_one_command_never_disables_the_node_or_keeps_what_it_half_did() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(root.path(), "alice").await;
    let bob = node(root.path(), "bob").await;
    alice.go_live();
    bob.go_live();
    let group = on(&alice, |v| v.create_group("Tuesday Circle", "Alice", NOW).unwrap()).await;
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    tokio::time::timeout(LIMIT, bob.join(&ticket, "Bob"))
        .await
        .unwrap()
        .unwrap();
    on(&alice, move |v| {
        v.edit(&group, |s| s.add_story(&story("Before the fault"), NOW))
            .unwrap()
    })
    .await;
    until(&bob, "Bob holds the first story", move |v| {
        titles(v, group) == ["Before the fault"]
    })
    .await;

    // A command writes a story and then panics before it returns: it fails plainly, and the
    // story it half-made is neither kept in memory nor on disk.
    let failed = alice
        .with_vault(move |v| {
            v.edit(&group, |s| -> Result<(), GroupError> {
                s.add_story(&story("Half done"), NOW)?;
                panic!("a bug in the middle of a command");
            })
        })
        .await;
    assert!(
        matches!(failed, Err(NetError::Vault(VaultError::Failed))),
        "the panicking edit fails plainly: {failed:?}"
    );
    // A panic outside any group edit fails the same way.
    let failed = alice
        .with_vault(|_| -> Result<(), VaultError> { panic!("a bug") })
        .await;
    assert!(matches!(failed, Err(NetError::Vault(VaultError::Failed))), "{failed:?}");

    // The node still answers, from what is on disk.
    assert_eq!(on(&alice, move |v| titles(v, group)).await, ["Before the fault"]);
    on(&alice, move |v| {
        v.edit(&group, |s| s.add_story(&story("After the fault"), NOW)).unwrap()
    })
    .await;
    until(&bob, "Bob holds the story written after the fault", move |v| {
        titles(v, group) == ["After the fault", "Before the fault"]
    })
    .await;
    // And it still takes what others write.
    on(&bob, move |v| {
        v.edit(&group, |s| s.add_story(&story("From Bob"), NOW)).unwrap()
    })
    .await;
    until(&alice, "Alice holds Bob's story", move |v| {
        titles(v, group) == ["After the fault", "Before the fault", "From Bob"]
    })
    .await;
    assert!(
        !on(&alice, move |v| titles(v, group))
            .await
            .contains(&"Half done".to_string()),
        "nothing of the failed command was kept"
    );
    for n in [alice, bob] {
        n.shutdown().await;
    }
}
