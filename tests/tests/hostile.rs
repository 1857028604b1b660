//! A hostile member against the other members' devices: operations and units crafted to
//! crash a device, plant a key, fill its queue, exhaust it with actors or squat a document.
//! Each must fail cleanly and leave every document and key as it was.

use alongside_core::crypto::{SigningSecret, SymmetricKey};
use alongside_core::group::{GroupSession, MAX_PENDING_PER_SENDER, MembershipSecrets, ReceiveError, Received};
use alongside_core::ids::{ChangeHash, DocId, GroupId, KeyId, MemberId, OpHash};
use alongside_core::membership::{EPOCH_SEAL_INFO, KeySeal, Op, OpKind, Role};
use alongside_core::model::edits::{MAX_BODY, NewStory};
use alongside_core::payload_budget::{MAX_INFLATED, Refusal, deflated_zeros};
use alongside_core::replica::{MAX_ACTORS_PER_AUTHOR, Rejection, actor_for};
use alongside_core::sync::DEFAULT_CHUNK_OPS;
use alongside_core::unit::{ChangeSignature, Payload, PayloadKind, SealedUnit};
use alongside_core::wire::Writer;
use alongside_tests::{NOW_MS, group, rng};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ObjType, ROOT};

/// Seals one change as `by`, signed by `by` (or unsigned).
fn unit_of(by: &GroupSession, doc: DocId, change: &Change, signed: bool) -> Vec<u8> {
    let (kid, key) = by.epoch_key().unwrap();
    let signatures = if signed {
        vec![ChangeSignature::sign(
            &by.secrets().signing,
            &by.id(),
            &doc,
            ChangeHash(change.hash().0),
            kid,
        )]
    } else {
        vec![]
    };
    let payload = Payload {
        kind: PayloadKind::Change,
        data: change.raw_bytes().to_vec(),
        signatures,
    };
    SealedUnit::seal(&mut rng(5), by.id(), doc, kid, &key, &by.secrets().signing, &payload)
        .bytes()
        .to_vec()
}

fn heads(s: &GroupSession) -> Vec<OpHash> {
    let ops = s.ops();
    ops.iter()
        .map(|o| o.hash())
        .filter(|h| !ops.iter().any(|o| o.op().parents.contains(h)))
        .collect()
}

fn op(
    s: &GroupSession,
    key: &SigningSecret,
    parents: Vec<OpHash>,
    kind: OpKind,
) -> alongside_core::membership::SignedOp {
    Op {
        group: s.id(),
        author: MemberId(key.public()),
        parents,
        created_at_ms: NOW_MS,
        kind,
    }
    .sign(key)
}

#[test]
fn a_change_whose_operations_name_a_missing_object_cannot_crash_a_device() {
    let mut g = group(21, &["Alice", "Bob"]);
    let doc = DocId::member_doc(&g[1].me());
    // Bob's second change refers to a map created by his first; renumbered as a first
    // change without that dependency, its operation names an object that does not exist.
    let mut scratch = Automerge::new();
    scratch.set_actor(actor_for(&g[1].me(), &[9; 8]));
    let mut tx = scratch.transaction();
    let map = tx.put_object(ROOT, "m", ObjType::Map).unwrap();
    tx.commit();
    let mut tx = scratch.transaction();
    tx.put(&map, "k", "v").unwrap();
    tx.commit();
    let mut poison = scratch.get_last_local_change().unwrap().decode();
    poison.seq = 1;
    poison.start_op = std::num::NonZeroU64::new(1).unwrap();
    poison.deps = vec![];
    poison.hash = None;
    let poison = Change::from(poison);
    let unit = unit_of(&g[1], doc, &poison, true);
    let before = g[0].replica(&doc).unwrap().heads();
    assert!(matches!(
        g[0].receive_unit(&unit),
        Err(ReceiveError::Rejected(Rejection::Malformed))
    ));
    assert_eq!(g[0].replica(&doc).unwrap().heads(), before);
    assert_eq!(g[0].display_name(&g[1].me()), "Bob", "the document still reads");
    // And the device goes on working.
    g[1].add_story(
        &NewStory {
            title: "t".into(),
            body: "b".into(),
            ..Default::default()
        },
        NOW_MS,
    )
    .unwrap();
    let story = g[1].take_outbox().pop().unwrap();
    assert!(matches!(g[0].receive_unit(story.bytes()), Ok(Received::Applied { .. })));
}

#[test]
fn unsigned_or_foreign_junk_never_occupies_the_queue_and_one_sender_cannot_fill_it() {
    let mut g = group(22, &["Alice", "Bob", "Carol"]);
    let doc = DocId::member_doc(&g[1].me());
    let junk = |n: i64, actor: ActorId| {
        let mut d = Automerge::new();
        d.set_actor(actor);
        let mut tx = d.transaction();
        tx.put(ROOT, "x", n).unwrap();
        tx.commit();
        let mut e = d.get_last_local_change().unwrap().decode();
        e.deps = vec![automerge::ChangeHash([7; 32])]; // never arrives
        e.hash = None;
        Change::from(e)
    };
    // A non-member actor, unsigned: rejected before it could wait.
    let unit = unit_of(&g[1], doc, &junk(0, ActorId::from(vec![1u8, 2, 3])), false);
    assert!(matches!(
        g[0].receive_unit(&unit),
        Err(ReceiveError::Rejected(Rejection::BadActor))
    ));
    // Bob's own actor but unsigned: rejected too.
    let bob_actor = actor_for(&g[1].me(), &g[1].secrets().actor_suffix);
    let unit = unit_of(&g[1], doc, &junk(0, bob_actor.clone()), false);
    assert!(matches!(
        g[0].receive_unit(&unit),
        Err(ReceiveError::Rejected(Rejection::Unsigned))
    ));
    // Signed, plausible, but waiting forever: Bob gets only his share of the queue.
    let mut queued = 0;
    for n in 0..(MAX_PENDING_PER_SENDER as i64 + 10) {
        let unit = unit_of(&g[1], doc, &junk(n, bob_actor.clone()), true);
        match g[0].receive_unit(&unit) {
            Ok(Received::Queued) => queued += 1,
            Err(ReceiveError::QueueFull) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(queued, MAX_PENDING_PER_SENDER);
    // Carol's honest out-of-order units still find room.
    g[2].add_story(
        &NewStory {
            title: "one".into(),
            body: "b".into(),
            ..Default::default()
        },
        NOW_MS,
    )
    .unwrap();
    g[2].add_story(
        &NewStory {
            title: "two".into(),
            body: "b".into(),
            ..Default::default()
        },
        NOW_MS,
    )
    .unwrap();
    let units = g[2].take_outbox();
    assert_eq!(g[0].receive_unit(units[1].bytes()).unwrap(), Received::Queued);
    assert!(matches!(
        g[0].receive_unit(units[0].bytes()).unwrap(),
        Received::Applied { changes: 2, .. }
    ));
}

#[test]
fn a_member_cannot_flood_a_document_with_actor_ids() {
    let mut g = group(23, &["Alice", "Bob"]);
    let doc = DocId::member_doc(&g[1].me());
    let mut accepted = 0;
    for i in 0..(MAX_ACTORS_PER_AUTHOR as u32 + 5) {
        let mut suffix = [0xee; 8];
        suffix[..4].copy_from_slice(&i.to_le_bytes());
        let mut d = Automerge::new();
        d.set_actor(actor_for(&g[1].me(), &suffix));
        let mut tx = d.transaction();
        tx.put(ROOT, format!("k{i}"), 1).unwrap();
        tx.commit();
        let unit = unit_of(&g[1], doc, &d.get_last_local_change().unwrap(), true);
        match g[0].receive_unit(&unit) {
            Ok(Received::Applied { .. }) => accepted += 1,
            Err(ReceiveError::Rejected(Rejection::TooManyActors)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Bob already used one actor (his display name): 63 more fit, the rest are refused.
    assert_eq!(accepted, MAX_ACTORS_PER_AUTHOR - 1);
    // The document still travels whole to a new device.
    let unit = g[0].document_unit(&doc).unwrap();
    let mut fresh = group(23, &["Alice", "Bob"]).remove(0);
    assert!(matches!(
        fresh.receive_unit(unit.bytes()),
        Ok(Received::Applied { .. }) | Ok(Received::Duplicate)
    ));
}

#[test]
fn an_invalid_operation_cannot_plant_an_epoch_key() {
    let mut g = group(24, &["Alice", "Bob", "Carol"]);
    let gid = g[0].id();
    let alice_key = g[0].secrets().signing.clone();
    let (alice, bob, carol) = (g[0].me(), g[1].me(), g[2].me());
    let box_of = |m: MemberId| g[0].membership().members[&m].box_public;
    let (alice_box, bob_box) = (box_of(alice), box_of(bob));
    let seal = |m: MemberId, b: [u8; 32], k: &SymmetricKey, r: u64| KeySeal {
        recipient: m,
        sealed: alongside_core::crypto::seal_to(&mut rng(r), &b, EPOCH_SEAL_INFO, &KeySeal::aad(&gid, &m), k.expose())
            .unwrap(),
    };
    // Alice removes Carol and rotates to a fresh key for Alice and Bob.
    let remove = op(
        &g[0],
        &alice_key,
        heads(&g[0]),
        OpKind::Remove {
            member: carol,
            heads: vec![],
        },
    );
    g[0].receive_ops(std::slice::from_ref(&remove)).unwrap();
    let genuine = SymmetricKey::generate(&mut rng(50));
    let mut seals = vec![seal(alice, alice_box, &genuine, 1), seal(bob, bob_box, &genuine, 2)];
    seals.sort_by_key(|s| s.recipient);
    let rotate = op(
        &g[0],
        &alice_key,
        heads(&g[0]),
        OpKind::Rotate { seals, previous: None },
    );
    g[0].receive_ops(std::slice::from_ref(&rotate)).unwrap();
    let epoch = KeyId(rotate.hash().0);
    // Carol, removed, "adds" Bob again, sealing her own key to him for the new epoch.
    let planted = SymmetricKey::generate(&mut rng(66));
    let carol_key = g[2].secrets().signing.clone();
    let bob_keys = g[1].secrets().public_keys(&gid);
    // (Its hash is ground to sort before the rotation's, where a naive reader meets it first.)
    let evil = (0..)
        .map(|t| {
            Op {
                group: gid,
                author: carol,
                parents: vec![rotate.hash()],
                created_at_ms: NOW_MS + t,
                kind: OpKind::Add {
                    keys: bob_keys.clone(),
                    role: Role::Member,
                    epoch,
                    seal: seal(bob, bob_box, &planted, 3),
                },
            }
            .sign(&carol_key)
        })
        .find(|o| o.hash() < rotate.hash())
        .unwrap();
    g[1].receive_ops(&[remove, rotate, evil]).unwrap();
    let (current, key) = g[1].epoch_key().unwrap();
    assert_eq!(current, epoch);
    assert!(key == genuine, "Bob holds the key Alice sealed, not Carol's");
    // An outsider's operation is not even stored.
    let outsider = MembershipSecrets::generate(&mut rng(67));
    let stray = op(&g[0], &outsider.signing, heads(&g[0]), OpKind::Leave { heads: vec![] });
    assert!(g[0].receive_ops(&[stray]).is_err());
}

#[test]
fn an_audience_document_cannot_be_claimed_by_someone_else() {
    let mut g = group(25, &["Alice", "Bob", "Carol"]);
    let bob = g[1].me();
    g[0].add_goal("Ninety meetings", None, &[bob], NOW_MS).unwrap();
    let units = g[0].take_outbox();
    let doc = units[0].header().doc;
    // Carol signs a grant naming Alice's document id with herself as owner.
    let carol = g[2].secrets().signing.clone();
    let forged = forged_grant(&g[2].id(), doc, &carol);
    assert!(alongside_core::audience::AudienceGrant::decode(&forged).is_err());
    for grant in g[0].grants() {
        g[1].receive_grant(grant).unwrap();
    }
    assert!(matches!(
        g[1].receive_unit(units[0].bytes()),
        Ok(Received::Applied { .. })
    ));
    assert_eq!(g[1].goals(NOW_MS).len(), 1);
}

/// A grant body in the documented format, signed by `owner`, for a document id of the
/// forger's choosing.
fn forged_grant(group: &GroupId, doc: DocId, owner: &SigningSecret) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1).bytes(&group.0);
    doc.encode(&mut w);
    w.bytes(&owner.public()).bytes(&[0u8; 32]).i64(NOW_MS).count(1);
    w.bytes(&owner.public()).var_bytes(&[0u8; 48]);
    let body = w.finish();
    let sig = owner.sign(&[b"alongside/audience-grant/v1".as_slice(), &body].concat());
    [body, sig.to_vec()].concat()
}

#[test]
fn a_member_who_is_not_a_facilitator_cannot_add_remove_or_promote_anyone() {
    let mut g = group(26, &["Alice", "Bob", "Carol"]);
    let (alice, bob) = (g[0].me(), g[1].me());
    let carol_key = g[2].secrets().signing.clone();
    let gid = g[0].id();
    let (epoch, key) = g[2].epoch_key().unwrap();
    let friend = MembershipSecrets::generate(&mut rng(68));
    let friend_keys = friend.public_keys(&gid);
    let seal = KeySeal {
        recipient: friend.member(),
        sealed: alongside_core::crypto::seal_to(
            &mut rng(69),
            &friend_keys.box_public,
            EPOCH_SEAL_INFO,
            &KeySeal::aad(&gid, &friend.member()),
            key.expose(),
        )
        .unwrap(),
    };
    // Carol, an ordinary member, signs operations only facilitators may make (the app
    // would refuse to; a modified one would not).
    let forged = [
        OpKind::Add {
            keys: friend_keys,
            role: Role::Facilitator,
            epoch,
            seal,
        },
        OpKind::Remove {
            member: alice,
            heads: vec![],
        },
        OpKind::ChangeRole {
            member: g[2].me(),
            role: Role::Facilitator,
            heads: vec![],
        },
    ];
    let ops: Vec<_> = forged
        .into_iter()
        .map(|kind| op(&g[2], &carol_key, heads(&g[2]), kind))
        .collect();
    let before: Vec<_> = g[0].membership().members.values().map(|m| (m.id, m.role)).collect();
    for d in g.iter_mut() {
        d.receive_ops(&ops).unwrap();
        let now: Vec<_> = d.membership().members.values().map(|m| (m.id, m.role)).collect();
        assert_eq!(now, before, "every device ignores them");
        assert!(!d.membership().members.contains_key(&friend.member()));
        assert!(d.membership().is_facilitator(&alice) && !d.membership().is_facilitator(&bob));
    }
    // The would-be member cannot join from those operations either.
    let mut with_forged = alongside_tests::ordered_ops(&g[0]);
    with_forged.extend(ops);
    assert!(GroupSession::join(rng(70), friend, &with_forged).is_err());
}

#[test]
fn a_removed_or_demoted_facilitator_cannot_act_by_backdating() {
    let mut g = group(27, &["Alice", "Bob", "Carol", "Dan"]);
    let (alice, bob, carol, dan) = (g[0].me(), g[1].me(), g[2].me(), g[3].me());
    for target in [bob, carol] {
        g[0].change_role(&target, Role::Facilitator, NOW_MS).unwrap();
    }
    let early = heads(&g[0]);
    let ops = g[0].ops();
    for d in g.iter_mut().skip(1) {
        d.receive_ops(&ops).unwrap();
    }
    // Alice removes Bob and demotes Carol.
    g[0].remove_member(&bob, NOW_MS).unwrap();
    g[0].change_role(&carol, Role::Member, NOW_MS).unwrap();
    // Later, each signs operations whose parents predate what Alice did.
    let (bob_key, carol_key) = (g[1].secrets().signing.clone(), g[2].secrets().signing.clone());
    let backdated = [
        op(
            &g[1],
            &bob_key,
            early.clone(),
            OpKind::Remove {
                member: dan,
                heads: vec![],
            },
        ),
        op(
            &g[1],
            &bob_key,
            early.clone(),
            OpKind::Leave {
                heads: vec![(
                    DocId::member_doc(&bob),
                    vec![alongside_core::membership::ActorHead {
                        suffix: g[1].secrets().actor_suffix,
                        seq: u32::MAX,
                        hash: ChangeHash([7; 32]),
                    }],
                )],
            },
        ),
        op(
            &g[2],
            &carol_key,
            early.clone(),
            OpKind::ChangeRole {
                member: carol,
                role: Role::Facilitator,
                heads: vec![],
            },
        ),
        op(
            &g[2],
            &carol_key,
            early,
            OpKind::Remove {
                member: dan,
                heads: vec![],
            },
        ),
    ];
    g[0].receive_ops(&backdated).unwrap();
    let state = g[0].membership();
    assert!(state.is_member(&dan), "backdated removals of others are void");
    assert!(!state.is_facilitator(&carol), "a backdated self-promotion is void");
    assert!(state.is_facilitator(&alice));
    // Bob's backdated leave records nothing: his later story is still refused.
    g[1].add_story(
        &NewStory {
            title: "Still writing".into(),
            body: "b".into(),
            warnings: vec![],
            no_replies: false,
        },
        NOW_MS,
    )
    .unwrap();
    let late = g[1].take_outbox();
    let got = g[0].receive_unit(late.last().unwrap().bytes());
    assert!(
        matches!(got, Err(ReceiveError::Rejected(Rejection::AfterRemoval))),
        "{got:?}"
    );
}

#[test]
fn operations_arriving_in_any_order_load_and_a_pile_of_heads_cannot_break_ours() {
    let mut g = group(28, &["Alice", "Bob"]);
    let bob_key = g[1].secrets().signing.clone();
    let genesis = alongside_tests::ordered_ops(&g[0])[0].hash();
    // Bob piles up 70 operations naming only the create (not his own add), each invalid.
    let pile: Vec<_> = (0..70u8)
        .map(|i| {
            op(
                &g[1],
                &bob_key,
                vec![genesis],
                OpKind::ChangeRole {
                    member: MemberId([i; 32]),
                    role: Role::Member,
                    heads: vec![],
                },
            )
        })
        .collect();
    g[0].receive_ops(&pile).unwrap();
    // Alice's next operation names at most 64 parents and every device can read it.
    let carol = MembershipSecrets::generate(&mut rng(71));
    let keys = carol.public_keys(&g[0].id());
    let added = g[0].add_member(keys, Role::Member, NOW_MS).unwrap();
    assert!(added.op().parents.len() <= 64);
    assert!(alongside_core::membership::SignedOp::decode(added.bytes()).is_ok());
    // Every order of the same operations loads, and to the same state.
    let all = g[0].ops();
    let expected: Vec<MemberId> = g[0].membership().members.keys().copied().collect();
    for seed in 0..12u64 {
        let mut shuffled = all.clone();
        use rand::seq::SliceRandom;
        shuffled.shuffle(&mut rng(seed));
        let create = alongside_tests::ordered_ops(&g[0])[0].clone();
        let mut log = alongside_core::membership::MembershipLog::new(create).unwrap();
        let (_, waiting) = log.insert_all(&shuffled).unwrap();
        assert!(waiting.is_empty());
        assert_eq!(log.state().members.keys().copied().collect::<Vec<_>>(), expected);
    }
}

#[test]
fn a_rotation_that_leaves_a_member_out_is_void_and_the_meeting_name_changes_only_with_real_epochs() {
    let mut g = group(29, &["Alice", "Bob", "Carol"]);
    let gid = g[0].id();
    let (alice, bob) = (g[0].me(), g[1].me());
    let box_of = |s: &GroupSession, m: MemberId| s.membership().members[&m].box_public;
    let (alice_box, bob_box) = (box_of(&g[0], alice), box_of(&g[0], bob));
    let name_before = g[0].lan_service_names(NOW_MS).unwrap();
    let epoch_before = g[0].membership().epoch;
    // Bob "rotates" to a key sealed to Alice and himself only, leaving Carol out.
    let quiet = SymmetricKey::generate(&mut rng(72));
    let seal = |m: MemberId, b: [u8; 32], r: u64| KeySeal {
        recipient: m,
        sealed: alongside_core::crypto::seal_to(
            &mut rng(r),
            &b,
            EPOCH_SEAL_INFO,
            &KeySeal::aad(&gid, &m),
            quiet.expose(),
        )
        .unwrap(),
    };
    let mut seals = vec![seal(alice, alice_box, 73), seal(bob, bob_box, 74)];
    seals.sort_by_key(|s| s.recipient);
    let bob_key = g[1].secrets().signing.clone();
    let rotation = op(&g[1], &bob_key, heads(&g[1]), OpKind::Rotate { seals, previous: None });
    g[0].receive_ops(std::slice::from_ref(&rotation)).unwrap();
    assert_eq!(g[0].membership().epoch, epoch_before, "the rotation is void");
    assert!(!g[0].membership().epochs.contains(&KeyId(rotation.hash().0)));
    assert_eq!(
        g[0].epoch_key().unwrap().0,
        epoch_before.unwrap(),
        "its key is not taken"
    );
    assert_eq!(g[0].lan_service_names(NOW_MS).unwrap(), name_before);
    // A real rotation changes the epoch and the name members look for on the network.
    g[0].rotate(NOW_MS).unwrap();
    assert_ne!(g[0].membership().epoch, epoch_before);
    assert_ne!(g[0].lan_service_names(NOW_MS).unwrap(), name_before);
}

/// Set in the child process that [`a_decompression_bomb_is_refused_before_it_is_inflated`]
/// runs the receiving device in, so that the peak memory it reads is that device's alone.
const BOMB_CHILD: &str = "ALONGSIDE_TEST_BOMB_CHILD";

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_decompression_bomb_is_refused_before_it_is_inflated() {
    const NAME: &str = "a_decompression_bomb_is_refused_before_it_is_inflated";
    if std::env::var_os(BOMB_CHILD).is_none() {
        // Alice's device runs alone in a process of its own: other tests share this one.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(BOMB_CHILD, "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&child.stdout);
        let grew: u64 = said
            .lines()
            .find_map(|l| l.split("peak memory growth: ").nth(1))
            .unwrap_or_else(|| panic!("the child reports its peak: {said}"))
            .parse()
            .unwrap();
        // Automerge would have held the whole gibibyte; the bounded inflater stops at the
        // budget (64 MiB), and nothing else of the unit comes near it.
        assert!(grew < 2 * MAX_INFLATED, "the device grew by {grew} bytes");
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert!(child.status.success(), "{said}{stderr}");
        return;
    }
    let mut g = group(31, &["Alice", "Bob"]);
    let doc = DocId::member_doc(&g[1].me());
    // Bob seals one compressed change chunk whose 6.6 MB stream inflates to 1 GiB.
    let inflated = 1u64 << 30;
    let mut data = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let stream = deflated_zeros(inflated);
    let mut len = stream.len() as u64;
    while len >= 0x80 {
        data.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    data.push(len as u8);
    data.extend_from_slice(&stream);
    let (kid, key) = g[1].epoch_key().unwrap();
    let signature = ChangeSignature::sign(&g[1].secrets().signing, &g[1].id(), &doc, ChangeHash([9; 32]), kid);
    let payload = Payload {
        kind: PayloadKind::Change,
        data,
        signatures: vec![signature],
    };
    let unit = SealedUnit::seal(
        &mut rng(6),
        g[1].id(),
        doc,
        kid,
        &key,
        &g[1].secrets().signing,
        &payload,
    );
    assert!(unit.bytes().len() < 8 << 20 && inflated >= 16 * MAX_INFLATED);
    let before = g[0].replica(&doc).unwrap().heads();
    let rejected = g[0].rejected_count();

    // Reset this process's peak resident size, receive, and read the peak again.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let resident = status_bytes("VmRSS:");
    let got = g[0].receive_unit(unit.bytes());
    let peak = status_bytes("VmHWM:");
    println!("\npeak memory growth: {}", peak.saturating_sub(resident));

    assert!(
        matches!(
            got,
            Err(ReceiveError::Rejected(Rejection::TooLarge(Refusal::Inflated {
                max: MAX_INFLATED
            })))
        ),
        "{got:?}"
    );
    assert_eq!(g[0].rejected_count(), rejected + 1, "the refusal is counted");
    assert_eq!(g[0].replica(&doc).unwrap().heads(), before, "the document is unchanged");
    assert_eq!(g[0].display_name(&g[1].me()), "Bob");
}

#[test]
fn a_document_larger_than_a_units_budget_still_reaches_a_new_device_in_bundles() {
    let mut g = group(32, &["Alice", "Bob"]);
    let doc = DocId::member_doc(&g[0].me());
    // 340 stories of the longest body a story may have: 68 MB of text, more than one
    // payload may inflate to, though each story's own unit is small.
    for i in 0..340 {
        let line = format!("Story {i}: one day at a time, and then the next one. ");
        let body: String = line.repeat(MAX_BODY / line.len() + 1).chars().take(MAX_BODY).collect();
        let story = NewStory {
            title: format!("Week {i}"),
            body,
            ..Default::default()
        };
        g[0].add_story(&story, NOW_MS).unwrap();
        g[0].take_outbox();
    }
    let whole = g[0].document_unit(&doc).unwrap();
    let mut fresh = group(32, &["Alice", "Bob"]).remove(1);
    assert!(
        matches!(
            fresh.receive_unit(whole.bytes()),
            Err(ReceiveError::Rejected(Rejection::TooLarge(Refusal::Inflated { .. })))
        ),
        "as one saved document it is over the budget"
    );
    let units = g[0].catch_up_units(&doc, &[], DEFAULT_CHUNK_OPS);
    assert!(units.len() > 1, "so it goes as several bundles");
    for unit in &units {
        let got = fresh.receive_unit(unit.bytes());
        assert!(matches!(got, Ok(Received::Applied { .. })), "{got:?}");
    }
    assert_eq!(
        fresh.replica(&doc).unwrap().heads(),
        g[0].replica(&doc).unwrap().heads()
    );
    assert_eq!(fresh.rejected_count(), 1);
}
