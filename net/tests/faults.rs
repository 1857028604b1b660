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

/// `n` operations by `key`, each about 237 KiB (a role change carrying as many recorded
/// heads as it may), following `parent`.
fn heavy_operations(
    group: alongside_core::ids::GroupId,
    key: &alongside_core::crypto::SigningSecret,
    parent: alongside_core::ids::OpHash,
    n: u8,
) -> Vec<alongside_core::membership::SignedOp> {
    use alongside_core::ids::{ChangeHash, DocId, DocKind, MemberId};
    use alongside_core::membership::{ActorHead, Op, OpKind, Role};
    (0..n)
        .map(|i| {
            let heads = (0..21u8)
                .map(|d| {
                    let doc = DocId {
                        kind: DocKind::Meeting,
                        bytes: [d; 32],
                    };
                    let heads = (0..256u32)
                        .map(|s| ActorHead {
                            suffix: [i; 8],
                            seq: s + 1,
                            hash: ChangeHash([d; 32]),
                        })
                        .collect();
                    (doc, heads)
                })
                .collect();
            Op {
                group,
                author: MemberId(key.public()),
                parents: vec![parent],
                created_at_ms: NOW + i64::from(i),
                kind: OpKind::ChangeRole {
                    member: MemberId([i; 32]),
                    role: Role::Member,
                    heads,
                },
            }
            .sign(key)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_membership_operations_cannot_break_joins_or_split_the_group() {
    let root = tempfile::tempdir().unwrap();
    let [alice, bob, mallory, carol] = [
        node(root.path(), "alice").await,
        node(root.path(), "bob").await,
        node(root.path(), "mallory").await,
        node(root.path(), "carol").await,
    ];
    alice.go_live();
    let group = on(&alice, |v| v.create_group("Tuesday Circle", "Alice", NOW).unwrap()).await;
    for (n, name) in [(&bob, "Bob"), (&mallory, "Mallory")] {
        let ticket = alice.invite(group, in_an_hour()).await.unwrap();
        tokio::time::timeout(LIMIT, n.join(&ticket, name))
            .await
            .unwrap()
            .unwrap();
    }
    // Mallory, a member, hands Alice's node 300 operations of about 237 KiB each: 70 MB.
    let (key, parent) = on(&mallory, move |v| {
        let s = v.session(&group).unwrap();
        let genesis = s.ops().into_iter().find(|o| o.op().parents.is_empty()).unwrap().hash();
        (s.secrets().signing.clone(), genesis)
    })
    .await;
    let flood = heavy_operations(group, &key, parent, 255);
    let more = heavy_operations(group, &key, flood[0].hash(), 45);
    on(&alice, move |v| {
        let _ = v.edit(&group, |s| s.receive_ops(&flood));
        let _ = v.edit(&group, |s| s.receive_ops(&more));
    })
    .await;
    let held: usize = on(&alice, move |v| {
        v.session(&group).unwrap().ops().iter().map(|o| o.bytes().len()).sum()
    })
    .await;
    assert!(
        held <= alongside_core::membership::MAX_BYTES_PER_AUTHOR + 64 * 1024,
        "Mallory's account holds at most its budget: {held} bytes in the log"
    );

    // A newcomer still joins through Alice (the answer fits a frame), with her name...
    let ticket = alice.invite(group, in_an_hour()).await.unwrap();
    tokio::time::timeout(LIMIT, carol.join(&ticket, "Carol"))
        .await
        .expect("the join answers in time")
        .expect("Carol joins");
    // ...and a member who lacks Mallory's operations still syncs with Alice and reads on.
    on(&alice, move |v| {
        v.edit(&group, |s| s.add_story(&story("After the flood"), NOW)).unwrap()
    })
    .await;
    tokio::time::timeout(LIMIT, bob.sync_all(group)).await.unwrap().unwrap();
    assert_eq!(on(&bob, move |v| titles(v, group)).await, ["After the flood"]);
    let names: Vec<String> = on(&alice, move |v| {
        v.session(&group)
            .unwrap()
            .members()
            .into_iter()
            .map(|m| m.name)
            .collect()
    })
    .await;
    assert!(
        names.contains(&"Carol".to_string()),
        "Carol joined with her name: {names:?}"
    );
    for n in [alice, bob, mallory, carol] {
        n.shutdown().await;
    }
}
