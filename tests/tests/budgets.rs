//! A hostile member spends a budget to the last byte (SECURITY.md, "Budgets"): the group's
//! membership log, documents and grants stay within what the budget says, and the honest
//! members can still remove them, write, and reopen their profiles.

use alongside_core::crypto::{PassphraseKdf, SigningSecret};
use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::ids::{MemberId, OpHash};
use alongside_core::membership::{MAX_OPS, MAX_OPS_PER_AUTHOR, Op, OpKind, RESERVED_OPS, Role, SignedOp};
use alongside_core::model::edits::NewStory;
use alongside_core::vault::Vault;
use alongside_tests::{NOW_MS, group, ordered_ops, rng};

fn signed(s: &GroupSession, key: &SigningSecret, parents: Vec<OpHash>, at: i64, kind: OpKind) -> SignedOp {
    Op {
        group: s.id(),
        author: MemberId(key.public()),
        parents,
        created_at_ms: at,
        kind,
    }
    .sign(key)
}

/// `n` operations by `key` that can never be valid (a member changing someone's role),
/// each following `parent`.
fn void_role_changes(s: &GroupSession, key: &SigningSecret, parent: OpHash, n: usize) -> Vec<SignedOp> {
    (0..n)
        .map(|i| {
            signed(
                s,
                key,
                vec![parent],
                NOW_MS + i as i64,
                OpKind::ChangeRole {
                    member: MemberId(key.public()),
                    role: Role::Facilitator,
                    heads: vec![],
                },
            )
        })
        .collect()
}

/// A void add by `by` naming fresh keys, followed by `per_key` void operations of those
/// keys, and then the same again from the fresh key (a chain `depth` long).
fn void_add_chain(
    s: &GroupSession,
    by: &SigningSecret,
    parent: OpHash,
    seed: u64,
    depth: u64,
    per_key: usize,
) -> Vec<SignedOp> {
    let (epoch, _) = s.epoch_key().unwrap();
    let mut out = Vec::new();
    let (mut author, mut after) = (by.clone(), parent);
    for d in 0..depth {
        let fresh = MembershipSecrets::generate(&mut rng(seed + d));
        let keys = fresh.public_keys(&s.id());
        let seal = alongside_core::membership::KeySeal {
            recipient: keys.member,
            sealed: vec![0; 80],
        };
        let add = signed(
            s,
            &author,
            vec![after],
            NOW_MS,
            OpKind::Add {
                keys,
                role: Role::Facilitator,
                epoch,
                seal,
            },
        );
        after = add.hash();
        out.push(add);
        out.extend(void_role_changes(s, &fresh.signing, after, per_key));
        author = fresh.signing;
    }
    out
}

/// `session` kept in a new profile on disk, and that profile unlocked again (a restart).
fn kept_and_reopened(session: GroupSession) -> (tempfile::TempDir, Vault, alongside_core::ids::GroupId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice");
    let mut vault = Vault::init(&path, "alice", b"pw", PassphraseKdf::TEST).unwrap();
    let gid = vault.adopt(session).unwrap();
    drop(vault);
    (dir, Vault::unlock(&path, b"pw").unwrap(), gid)
}

fn story(title: &str) -> NewStory {
    NewStory {
        title: title.into(),
        body: "In my own words.".into(),
        ..Default::default()
    }
}

#[test]
fn a_member_cannot_freeze_membership_with_void_adds_and_the_keys_they_name() {
    let mut g = group(171, &["Alice", "Bob", "Mallory"]);
    let mallory = g[2].secrets().signing.clone();
    let mallory_id = g[2].me();
    let genesis = ordered_ops(&g[0])[0].hash();
    let before = g[0].ops().len();

    // One frame's worth: Mallory (not a facilitator) names fresh keys in adds that are
    // void, and every fresh key writes as much as an author may, again and again.
    let flood = void_add_chain(&g[2], &mallory, genesis, 9_000, 12, MAX_OPS_PER_AUTHOR);
    assert!(flood.len() > MAX_OPS, "the flood would fill the log");
    let _ = g[0].receive_ops(&flood);
    let stored = g[0].ops().len() - before;
    assert!(
        stored <= MAX_OPS_PER_AUTHOR,
        "Mallory and every key she named share one account: {stored} stored"
    );

    // Alice can still remove her, and everyone still writes (a rotation is recorded).
    g[0].remove_member(&mallory_id, NOW_MS).unwrap();
    g[0].settle(NOW_MS).unwrap();
    g[0].add_story(&story("Still here"), NOW_MS).unwrap();

    // Removed, Mallory tries again from the operations she holds: still one account.
    let more = void_add_chain(&g[2], &mallory, genesis, 19_000, 12, MAX_OPS_PER_AUTHOR);
    let _ = g[0].receive_ops(&more);
    assert!(g[0].ops().len() - before <= MAX_OPS_PER_AUTHOR + 8);

    // After a restart the group opens, and Alice can still act and even leave.
    let (_dir, mut vault, gid) = kept_and_reopened(g.remove(0));
    vault
        .edit(&gid, |s| s.add_story(&story("After the restart"), NOW_MS))
        .unwrap();
    let me = vault.session(&gid).unwrap().me();
    let bob = vault
        .session(&gid)
        .unwrap()
        .membership()
        .members
        .keys()
        .copied()
        .find(|m| *m != me)
        .unwrap();
    vault
        .edit(&gid, |s| s.change_role(&bob, Role::Facilitator, NOW_MS))
        .unwrap();
    vault.edit(&gid, |s| s.leave(NOW_MS)).unwrap();
}

#[test]
fn members_flooding_the_log_together_leave_room_to_remove_them() {
    let names = ["Alice", "Bob", "M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8"];
    let mut g = group(172, &names);
    let genesis = ordered_ops(&g[0])[0].hash();
    // Eight members each write as much as their account allows: more than the room
    // everyone may use.
    let floods: Vec<SignedOp> = (2..names.len())
        .flat_map(|i| {
            let key = g[i].secrets().signing.clone();
            void_role_changes(&g[i], &key, genesis, MAX_OPS_PER_AUTHOR)
        })
        .collect();
    assert!(floods.len() > MAX_OPS - RESERVED_OPS);
    let _ = g[0].receive_ops(&floods);
    assert!(
        g[0].ops().len() <= MAX_OPS - RESERVED_OPS,
        "ordinary room is full at most"
    );

    // Nothing ordinary fits any more, not even from Bob...
    let bob_key = g[1].secrets().signing.clone();
    let late = void_role_changes(&g[1], &bob_key, genesis, 1);
    let _ = g[0].receive_ops(&late);
    assert!(
        g[0].membership_op(&late[0].hash()).is_none(),
        "the ordinary room is full"
    );
    // ...but Alice removes every flooding member, each removal followed by a rotation.
    let members: Vec<MemberId> = (2..names.len()).map(|i| g[i].me()).collect();
    for m in &members {
        g[0].remove_member(m, NOW_MS).unwrap();
        g[0].settle(NOW_MS).unwrap();
    }
    let state = g[0].membership();
    assert!(
        members.iter().all(|m| !state.members.contains_key(m)),
        "all eight are gone"
    );
    g[0].add_story(&story("The group goes on"), NOW_MS).unwrap();
    // Bob hears all of it and holds the new key.
    let ops = ordered_ops(&g[0]);
    g[1].receive_ops(&ops).unwrap();
    assert_eq!(g[1].epoch_key().unwrap().0, g[0].epoch_key().unwrap().0);
}

/// A change by `by` to `doc` that waits forever (it follows a change that never comes),
/// carrying about `kib` KiB that do not compress.
fn waiting_unit(by: &GroupSession, doc: alongside_core::ids::DocId, n: u64, kib: usize) -> Vec<u8> {
    use alongside_core::ids::ChangeHash;
    use alongside_core::replica::actor_for;
    use alongside_core::unit::{ChangeSignature, Payload, PayloadKind, SealedUnit};
    use automerge::transaction::Transactable;
    use rand::Rng;
    let mut d = automerge::Automerge::new();
    d.set_actor(actor_for(&by.me(), &by.secrets().actor_suffix));
    let mut tx = d.transaction();
    let mut noise = vec![0u8; 64 * 1024];
    let mut r = rng(n);
    for i in 0..kib.div_ceil(128) {
        r.fill_bytes(&mut noise);
        let text: String = noise.iter().map(|b| format!("{b:02x}")).collect();
        tx.put(automerge::ROOT, format!("k{i}"), text).unwrap();
    }
    tx.commit();
    let mut e = d.get_last_local_change().unwrap().decode();
    e.deps = vec![automerge::ChangeHash([7; 32])];
    e.hash = None;
    let change = automerge::Change::from(e);
    let (kid, key) = by.epoch_key().unwrap();
    let sig = ChangeSignature::sign(&by.secrets().signing, &by.id(), &doc, ChangeHash(change.hash().0), kid);
    let payload = Payload {
        kind: PayloadKind::Change,
        data: change.raw_bytes().to_vec(),
        signatures: vec![sig],
    };
    SealedUnit::seal(
        &mut rng(n + 1),
        by.id(),
        doc,
        kid,
        &key,
        &by.secrets().signing,
        &payload,
    )
    .bytes()
    .to_vec()
}

#[test]
fn one_senders_waiting_units_leave_room_for_everyone_elses() {
    use alongside_core::group::{MAX_PENDING_BYTES_PER_SENDER, ReceiveError, Received};
    use alongside_core::ids::DocId;
    let mut g = group(173, &["Alice", "Bob", "Carol"]);
    let doc = DocId::member_doc(&g[1].me());
    // Bob's units that can never apply fill his share of the waiting room, and no more.
    let mut held = 0;
    for n in 0..64 {
        let unit = waiting_unit(&g[1], doc, 100 + n, 1024);
        match g[0].receive_unit(&unit) {
            Ok(Received::Queued) => held += unit.len(),
            Err(ReceiveError::QueueFull) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        held > 0 && held <= MAX_PENDING_BYTES_PER_SENDER,
        "{held} bytes wait for Bob"
    );
    // One unit larger than a share never waits.
    let huge = waiting_unit(&g[1], doc, 1, MAX_PENDING_BYTES_PER_SENDER / 1024 + 64);
    assert!(matches!(g[0].receive_unit(&huge), Err(ReceiveError::QueueFull)));
    // Carol's honest out-of-order units still find room, and apply when their turn comes.
    g[2].add_story(&story("one"), NOW_MS).unwrap();
    g[2].add_story(&story("two"), NOW_MS).unwrap();
    let units = g[2].take_outbox();
    assert_eq!(g[0].receive_unit(units[1].bytes()).unwrap(), Received::Queued);
    assert!(matches!(
        g[0].receive_unit(units[0].bytes()).unwrap(),
        Received::Applied { changes: 2, .. }
    ));
}

#[test]
fn a_member_cannot_make_a_group_hold_more_grants_than_its_record_can_say() {
    use alongside_core::audience::AudienceGrant;
    use alongside_core::crypto::SymmetricKey;
    use alongside_core::group::{MAX_GRANTS_PER_OWNER, ReceiveError};
    let mut g = group(174, &["Alice", "Mallory"]);
    let gid = g[0].id();
    let alice = g[0].me();
    let alice_box = g[0].membership().members[&alice].box_public;
    let mallory = g[1].secrets().clone();
    let key = SymmetricKey::generate(&mut rng(1));
    // Mallory shares one item with Alice after another, each under its own grant: the
    // first ones are held, the rest are left out, and nothing panics.
    let mut held = 0;
    let mut r = rng(2);
    for _ in 0..MAX_GRANTS_PER_OWNER + 40 {
        let grant = AudienceGrant::create(
            &mut r,
            gid,
            &mallory.signing,
            mallory.boxed.public(),
            &[(alice, alice_box)],
            &key,
            NOW_MS,
        )
        .unwrap();
        match g[0].receive_grant(grant) {
            Ok(()) => held += 1,
            Err(ReceiveError::OverBudget) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(held, MAX_GRANTS_PER_OWNER);
    // Alice's own sharing is not held up by Mallory's, and her profile writes and reopens.
    let (_dir, mut vault, gid) = kept_and_reopened(g.remove(0));
    assert_eq!(vault.session(&gid).unwrap().grants().len(), MAX_GRANTS_PER_OWNER);
    vault.edit(&gid, |s| s.add_story(&story("Still mine"), NOW_MS)).unwrap();
}
