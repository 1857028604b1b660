//! Every kind of bad unit is rejected before Automerge sees it, without a panic and without
//! changing any document. Each test narrates one attack by a member (Bob) or an outsider
//! against Alice's device.

use alongside_core::crypto::{SigningSecret, SymmetricKey};
use alongside_core::group::{GroupSession, MembershipSecrets, ReceiveError};
use alongside_core::ids::{ChangeHash, DocId, DocKind, KeyId};
use alongside_core::replica::{Rejection, actor_for};
use alongside_core::unit::{ChangeSignature, Payload, PayloadKind, SealedUnit};
use alongside_tests::{NOW_MS, group, rng, story, sync_all};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ROOT};

/// One change by `actor` on top of `base` (a saved document, or nothing).
fn make_change(base: Option<&[u8]>, actor: ActorId, key: &str) -> Change {
    let mut doc = base.map(|b| Automerge::load(b).unwrap()).unwrap_or_default();
    doc.set_actor(actor);
    let mut tx = doc.transaction();
    tx.put(ROOT, key, "value").unwrap();
    tx.commit();
    doc.get_last_local_change().unwrap()
}

/// Seals `changes` (encoded as one change or a bundle-like saved doc) as `sender`.
fn seal(
    sender: &SigningSecret,
    alice: &GroupSession,
    doc: DocId,
    key: (KeyId, SymmetricKey),
    change: &Change,
    signer: &SigningSecret,
) -> Vec<u8> {
    let sig = ChangeSignature::sign(signer, &alice.id(), &doc, ChangeHash(change.hash().0), key.0);
    let payload = Payload {
        kind: PayloadKind::Change,
        data: change.raw_bytes().to_vec(),
        signatures: vec![sig],
    };
    SealedUnit::seal(&mut rng(99), alice.id(), doc, key.0, &key.1, sender, &payload)
        .bytes()
        .to_vec()
}

fn heads(s: &GroupSession, doc: &DocId) -> Vec<ChangeHash> {
    s.replica(doc).map(|r| r.heads()).unwrap_or_default()
}

fn rejected(r: Result<alongside_core::group::Received, ReceiveError>) -> Rejection {
    match r {
        Err(ReceiveError::Rejected(why)) => why,
        other => panic!("expected a validation rejection, got {other:?}"),
    }
}

#[test]
fn any_single_flipped_byte_of_a_sealed_unit_is_rejected_and_changes_nothing() {
    let mut g = group(1, &["Alice", "Bob"]);
    g[0].add_story(&story("Day one"), NOW_MS).unwrap();
    let unit = g[0].take_outbox().pop().unwrap();
    let bob = &mut g[1];
    let doc = unit.header().doc;
    let before = heads(bob, &doc);
    for i in 0..unit.bytes().len() {
        let mut bad = unit.bytes().to_vec();
        bad[i] ^= 0x01;
        assert!(bob.receive_unit(&bad).is_err(), "byte {i} flipped was accepted");
    }
    assert_eq!(heads(bob, &doc), before, "a rejected unit changed the document");
    assert!(bob.stories().is_empty());
    // The genuine unit still applies afterwards.
    assert!(bob.receive_unit(unit.bytes()).is_ok());
    assert_eq!(bob.stories().len(), 1);
}

#[test]
fn change_with_a_sequence_gap_is_rejected_before_automerge_sees_it() {
    // Bob's member document already holds his first change (his display name).
    let mut g = group(2, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let doc = DocId::member_doc(&bob.me());
    let saved = bob.replica(&doc).unwrap().save();
    let actor = actor_for(&bob.me(), &bob.secrets().actor_suffix);
    let honest = make_change(Some(&saved), actor, "mood");
    // Forge sequence 3 on top of sequence 1: Automerge 0.12 would hit an assertion.
    let mut forged = honest.decode();
    forged.seq = 3;
    forged.hash = None;
    let forged = Change::from(forged);
    let before = heads(&alice, &doc);
    let key = bob.epoch_key().unwrap();
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        key,
        &forged,
        &bob.secrets().signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::SequenceGap);
    assert_eq!(heads(&alice, &doc), before);
    assert_eq!(alice.rejected_count(), 1);
}

#[test]
fn a_second_branch_by_the_same_actor_is_rejected() {
    let mut g = group(3, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let doc = DocId::member_doc(&bob.me());
    let actor = actor_for(&bob.me(), &bob.secrets().actor_suffix);
    // A change numbered 2 that does not descend from Bob's change 1: a fork of his history.
    let mut fork = make_change(None, actor, "other").decode();
    fork.seq = 2;
    fork.hash = None;
    let fork = Change::from(fork);
    let before = heads(&alice, &doc);
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &fork,
        &bob.secrets().signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::Fork);
    // Reusing sequence number 1 for different content is refused too.
    let replay = make_change(None, actor_for(&bob.me(), &bob.secrets().actor_suffix), "again");
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &replay,
        &bob.secrets().signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::SequenceGap);
    assert_eq!(heads(&alice, &doc), before);
}

#[test]
fn a_change_whose_actor_is_alice_but_signed_only_by_bob_is_rejected() {
    let mut g = group(4, &["Alice", "Bob"]);
    g[0].add_meeting(
        &alongside_core::model::edits::NewMeeting {
            title: "Weekly".into(),
            at: "2026-12-01T19:00:00Z".into(),
            place: None,
            facilitator: None,
            agenda: String::new(),
        },
        NOW_MS,
    )
    .unwrap();
    sync_all(&mut g);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let doc = bob.replicas().find(|r| r.id().kind == DocKind::Meeting).unwrap().id();
    let saved = bob.replica(&doc).unwrap().save();
    // Bob writes into the shared meeting under Alice's actor id, and signs it himself.
    let as_alice = actor_for(&alice.me(), &[7; 8]);
    let change = make_change(Some(&saved), as_alice, "notes-forged");
    let before = heads(&alice, &doc);
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &change,
        &bob.secrets().signing,
    );
    // Alice signed nothing in it, so her (alleged) change is not covered.
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::Unsigned);
    // Without any signature it is not covered either.
    let payload = Payload {
        kind: PayloadKind::Change,
        data: change.raw_bytes().to_vec(),
        signatures: vec![],
    };
    let key = bob.epoch_key().unwrap();
    let unsigned = SealedUnit::seal(
        &mut rng(5),
        alice.id(),
        doc,
        key.0,
        &key.1,
        &bob.secrets().signing,
        &payload,
    );
    assert_eq!(rejected(alice.receive_unit(unsigned.bytes())), Rejection::Unsigned);
    assert_eq!(heads(&alice, &doc), before);
}

#[test]
fn a_member_writing_into_another_members_document_is_rejected() {
    let mut g = group(5, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let doc = DocId::member_doc(&alice.me());
    let saved = alice.replica(&doc).unwrap().save();
    let change = make_change(Some(&saved), actor_for(&bob.me(), &[1; 8]), "name");
    let before = heads(&alice, &doc);
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &change,
        &bob.secrets().signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::NotAllowed);
    assert_eq!(heads(&alice, &doc), before);
    assert_eq!(alice.display_name(&alice.me()), "Alice");
    // A member (not a facilitator) writing the group document is refused the same way.
    let gdoc = DocId::group_doc(&alice.id());
    let saved = alice.replica(&gdoc).unwrap().save();
    let change = make_change(Some(&saved), actor_for(&bob.me(), &[1; 8]), "name");
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        gdoc,
        bob.epoch_key().unwrap(),
        &change,
        &bob.secrets().signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::NotAllowed);
    assert_eq!(alice.name(), "Tuesday Circle");
}

#[test]
fn a_non_member_writing_anything_is_rejected() {
    let mut g = group(6, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let outsider = MembershipSecrets::generate(&mut rng(66));
    let doc = DocId::member_doc(&outsider.member());
    let change = make_change(None, actor_for(&outsider.member(), &outsider.actor_suffix), "name");
    // Even holding the epoch key, an outsider's unit is refused by sender.
    let unit = seal(
        &outsider.signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &change,
        &outsider.signing,
    );
    assert!(matches!(alice.receive_unit(&unit), Err(ReceiveError::NotAMember)));
    // Relayed by a member, the outsider's change is refused by author.
    let unit = seal(
        &bob.secrets().signing,
        &alice,
        doc,
        bob.epoch_key().unwrap(),
        &change,
        &outsider.signing,
    );
    assert_eq!(rejected(alice.receive_unit(&unit)), Rejection::NotAllowed);
    assert!(alice.replica(&doc).is_none());
    assert_eq!(alice.rejected_count(), 2);
}

#[test]
fn a_goal_audience_document_is_unreadable_outside_its_audience() {
    let mut g = group(7, &["Alice", "Bob", "Carol"]);
    let bob_id = g[1].me();
    let goal = g[0]
        .add_goal("Ninety meetings", Some("90 days"), &[bob_id], NOW_MS)
        .unwrap();
    let units: Vec<SealedUnit> = g[0].take_outbox();
    let grants = g[0].grants();
    for m in g.iter_mut().skip(1) {
        for grant in &grants {
            m.receive_grant(grant.clone()).unwrap();
        }
        for u in &units {
            let _ = m.receive_unit(u.bytes());
        }
    }
    let (bob, carol) = (&g[1], &g[2]);
    assert_eq!(bob.goals(NOW_MS).len(), 1, "Bob is in the audience");
    assert_eq!(bob.goals(NOW_MS)[0].id, goal.to_hex());
    assert!(carol.goals(NOW_MS).is_empty(), "Carol is not");
    let audience_doc = units[0].header().doc;
    assert_eq!(audience_doc.kind, DocKind::Audience);
    assert!(carol.replica(&audience_doc).is_none());
    // Carol tries every key she holds: the grant has no seal for her, the epoch key fails.
    assert!(grants[0].open(&carol.me(), &carol.secrets().boxed).is_none());
    let (_, epoch_key) = carol.epoch_key().unwrap();
    assert!(units[0].open(&epoch_key).is_err());
    let mut carol = g.pop().unwrap();
    assert!(matches!(carol.receive_unit(units[0].bytes()), Err(ReceiveError::NoKey)));
}

#[test]
fn a_replayed_unit_is_a_no_op() {
    let mut g = group(8, &["Alice", "Bob"]);
    g[0].add_story(&story("Replay"), NOW_MS).unwrap();
    let unit = g[0].take_outbox().pop().unwrap();
    let bob = &mut g[1];
    assert!(matches!(
        bob.receive_unit(unit.bytes()).unwrap(),
        alongside_core::group::Received::Applied { changes: 1, .. }
    ));
    let doc = unit.header().doc;
    let after = heads(bob, &doc);
    assert_eq!(
        bob.receive_unit(unit.bytes()).unwrap(),
        alongside_core::group::Received::Duplicate
    );
    assert_eq!(heads(bob, &doc), after);
    assert_eq!(bob.stories().len(), 1);
}
