//! The sans-IO sync engine between two in-process devices: frames are passed as bytes,
//! exactly as the transport will carry them.

use alongside_core::group::GroupSession;
use alongside_core::group::MembershipSecrets;
use alongside_core::ids::{DocId, DocKind};
use alongside_core::membership::Role;
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting};
use alongside_core::sync::{FrameReader, Message, PeerSync, ProtocolError};
use alongside_tests::{Link, NOW_MS, group, ordered_ops, rng, story, sync_pair};

fn meeting() -> NewMeeting {
    NewMeeting {
        title: "Weekly".into(),
        at: "2026-12-01T19:00:00Z".into(),
        place: Some("Room 4".into()),
        facilitator: None,
        agenda: String::new(),
    }
}

fn same(a: &GroupSession, b: &GroupSession) {
    assert_eq!(a.stories(), b.stories());
    assert_eq!(a.goals(NOW_MS), b.goals(NOW_MS));
    assert_eq!(a.meetings(), b.meetings());
    assert_eq!(a.reach_outs(), b.reach_outs());
    assert_eq!(
        a.members(),
        b.members()
            .into_iter()
            .map(|mut m| {
                m.me = m.id == a.me().to_hex();
                m
            })
            .collect::<Vec<_>>()
    );
}

fn units(sent: &[Message]) -> usize {
    sent.iter().filter(|m| matches!(m, Message::Unit { .. })).count()
}

#[test]
fn alice_and_bob_write_offline_then_meet_and_agree() {
    let mut g = group(31, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    // Offline, both write.
    alice.add_story(&story("Ninety days"), NOW_MS).unwrap();
    let m = alice.add_meeting(&meeting(), NOW_MS).unwrap().to_hex();
    alice.append_meeting_notes(&m, "We opened with quiet.").unwrap();
    let goal = bob.add_goal("Walk daily", None, &[], NOW_MS).unwrap().to_hex();
    let c = NewCheckIn {
        date: "2026-11-29".into(),
        kind: CheckInKind::Setback,
        mood: Some(2),
        craving: Some(6),
        halt: vec!["tired".into()],
        note: String::new(),
    };
    bob.check_in(&goal, &c, NOW_MS).unwrap();
    bob.add_story(&story("A hard week"), NOW_MS).unwrap();
    let _ = sync_pair(&mut alice, &mut bob);
    same(&alice, &bob);
    assert_eq!(bob.meetings()[0].notes, "We opened with quiet.\n");

    // Now both type into the same notes while apart, and meet again.
    alice
        .append_meeting_notes(&m, "Alice: two members shared milestones.")
        .unwrap();
    bob.append_meeting_notes(&m, "Bob: we read the agreements.").unwrap();
    let (sa, _, sent_a, sent_b) = sync_pair(&mut alice, &mut bob);
    same(&alice, &bob);
    let notes = alice.meetings()[0].notes.clone();
    assert!(notes.contains("Alice: two members") && notes.contains("Bob: we read"));
    assert!(
        sa.reconcile_rounds >= 1,
        "the shared document was reconciled, not resent"
    );
    assert_eq!(units(&sent_a) + units(&sent_b), 2, "one bundle each way");
}

#[test]
fn a_member_who_has_nothing_receives_everything_they_may_read() {
    let mut g = group(32, &["Alice", "Bob", "Carol"]);
    let carol_id = g[2].me();
    g[0].add_story(&story("Welcome"), NOW_MS).unwrap();
    let bob_id = g[1].me();
    g[0].add_goal("Just for Bob", None, &[bob_id], NOW_MS).unwrap();
    g[0].reach_out("Anyone up?", &[], NOW_MS).unwrap();
    g[0].take_outbox();
    // Carol's new device knows only the operations up to her own add.
    let secrets = g[2].secrets().clone();
    let mut carol = GroupSession::join(rng(320), secrets, &ordered_ops(&g[0])).unwrap();
    assert_eq!(carol.me(), carol_id);
    let (_, _, sent_a, _) = sync_pair(&mut g[0], &mut carol);
    assert_eq!(carol.stories().len(), 1);
    assert_eq!(carol.reach_outs().len(), 1);
    assert!(
        carol.goals(NOW_MS).is_empty(),
        "the goal shared with Bob only is not sent to Carol"
    );
    assert!(!carol.replicas().any(|r| r.id().kind == DocKind::Audience));
    let audience_units = sent_a.iter().filter(|m| match m {
        Message::Unit { bytes } => {
            alongside_core::unit::SealedUnit::decode(bytes)
                .unwrap()
                .header()
                .doc
                .kind
                == DocKind::Audience
        }
        _ => false,
    });
    assert_eq!(audience_units.count(), 0);
    assert_eq!(carol.display_name(&g[1].me()), "Bob");
}

#[test]
fn a_second_sync_with_nothing_new_sends_no_content() {
    let mut g = group(33, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    alice.add_story(&story("One"), NOW_MS).unwrap();
    let _ = sync_pair(&mut alice, &mut bob);
    let (sa, sb, sent_a, sent_b) = sync_pair(&mut alice, &mut bob);
    assert_eq!(units(&sent_a) + units(&sent_b), 0);
    assert!(
        !sent_a
            .iter()
            .chain(&sent_b)
            .any(|m| matches!(m, Message::Reconcile { .. })),
        "no document was reconciled"
    );
    // Hello, Membership, one document-set round, its outcome, Caught up: five small
    // frames each way, whatever the number of documents.
    assert_eq!((sa.frames_sent, sb.frames_sent), (5, 5));
}

#[test]
fn reconciliation_costs_grow_with_the_difference_not_the_history() {
    let mut g = group(34, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let m = alice.add_meeting(&meeting(), NOW_MS).unwrap().to_hex();
    for i in 0..1000 {
        alice
            .splice_meeting_notes(&m, 0, 0, if i % 2 == 0 { "a" } else { "b" })
            .unwrap();
    }
    let _ = sync_pair(&mut alice, &mut bob);
    for i in 0..5 {
        alice.splice_meeting_notes(&m, i, 0, "x").unwrap();
        bob.splice_meeting_notes(&m, 0, 0, "y").unwrap();
    }
    let (_, _, sent_a, sent_b) = sync_pair(&mut alice, &mut bob);
    let reconcile_bytes: usize = sent_a
        .iter()
        .chain(&sent_b)
        .map(|m| match m {
            Message::Reconcile { msg, .. } => msg.len(),
            Message::Need { heads, .. } => heads.len() * 32,
            _ => 0,
        })
        .sum();
    let all_hashes = 1011 * 32;
    assert!(
        reconcile_bytes * 4 < all_hashes,
        "reconciling 10 differences among 1011 changes took {reconcile_bytes} bytes"
    );
    same(&alice, &bob);
}

#[test]
fn malformed_or_out_of_order_frames_are_protocol_errors_and_change_nothing() {
    let mut g = group(35, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    alice.add_story(&story("Kept"), NOW_MS).unwrap();
    alice.take_outbox();
    let before: Vec<(DocId, _)> = alice.replicas().map(|r| (r.id(), r.heads())).collect();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xde, 0xad, 0xbe, 0xef]),
        ("empty", vec![]),
        ("unknown version", vec![2, 1]),
        ("unknown type", vec![1, 42]),
        (
            "truncated hello",
            Message::Hello {
                group: alice.id(),
                ops: vec![],
            }
            .to_frame()[4..20]
                .to_vec(),
        ),
        (
            "digest before hello",
            Message::DocSet { msg: vec![0x61] }.to_frame()[4..].to_vec(),
        ),
        (
            "pushed operations before membership",
            Message::Ops {
                ops: vec![],
                grants: vec![],
            }
            .to_frame()[4..]
                .to_vec(),
        ),
        (
            "unit before membership",
            Message::Unit { bytes: vec![1, 2, 3] }.to_frame()[4..].to_vec(),
        ),
        (
            "need out of nowhere",
            Message::Need {
                doc: DocId::group_doc(&alice.id()),
                heads: vec![],
            }
            .to_frame()[4..]
                .to_vec(),
        ),
    ];
    for (what, frame) in bad {
        let (mut s, _) = PeerSync::start(&alice, bob.me(), false);
        assert!(s.handle_frame(&mut alice, &frame).is_err(), "{what} was accepted");
    }
    // Another group's hello, and a second hello.
    let (mut s, _) = PeerSync::start(&alice, bob.me(), false);
    let other = Message::Hello {
        group: alongside_core::ids::GroupId([9; 32]),
        ops: vec![],
    }
    .to_frame();
    assert!(matches!(
        s.handle_frame(&mut alice, &other[4..]),
        Err(ProtocolError::WrongGroup)
    ));
    let (mut s, _) = PeerSync::start(&alice, bob.me(), false);
    let hello = Message::Hello {
        group: alice.id(),
        ops: bob.op_hashes(),
    }
    .to_frame();
    s.handle_frame(&mut alice, &hello[4..]).unwrap();
    assert!(s.handle_frame(&mut alice, &hello[4..]).is_err());
    // A unit that fails validation closes the session.
    let membership = Message::Membership {
        ops: vec![],
        grants: vec![],
    }
    .to_frame();
    s.handle_frame(&mut alice, &membership[4..]).unwrap();
    let junk_unit = Message::Unit { bytes: vec![1; 300] }.to_frame();
    assert!(matches!(
        s.handle_frame(&mut alice, &junk_unit[4..]),
        Err(ProtocolError::BadUnit(_))
    ));
    let after: Vec<(DocId, _)> = alice.replicas().map(|r| (r.id(), r.heads())).collect();
    assert_eq!(before, after);
    // An oversized length prefix is refused before it is buffered.
    let mut reader = FrameReader::new();
    reader.push(&(200u32 * 1024 * 1024).to_le_bytes());
    assert!(reader.next_frame().is_err());
}

/// Pushes every unit in `a`'s outbox over the link, as the node does after each edit.
fn push_outbox(link: &mut Link, a: &mut GroupSession) {
    for unit in a.take_outbox() {
        let step = link.a.push(a, &unit);
        link.send_from_a(step.frames);
    }
}

#[test]
fn while_connected_changes_are_pushed_and_a_new_round_repairs_a_lost_push() {
    let mut g = group(36, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let mut link = Link::open(&alice, &bob);
    link.pump(&mut alice, &mut bob);
    assert!(link.a.is_live() && link.b.is_live() && link.a.is_caught_up());
    assert_eq!(link.a.rounds_completed(), 1);

    // Alice writes while connected: one Unit frame, applied by Bob at once.
    alice.add_story(&story("Written live"), NOW_MS).unwrap();
    let before = link.sent_a.len();
    push_outbox(&mut link, &mut alice);
    link.pump(&mut alice, &mut bob);
    assert_eq!(units(&link.sent_a[before..]), 1);
    assert_eq!(link.sent_a.len() - before, 1, "a push is one frame, no reconciliation");
    assert_eq!(bob.stories()[0].title, "Written live");

    // Bob's push to Alice is lost on the way; the dialer's next anti-entropy round repairs it.
    bob.add_story(&story("Pushed into the void"), NOW_MS).unwrap();
    bob.take_outbox();
    assert!(link.b.begin_round(&bob).is_none(), "only the dialer starts rounds");
    let step = link.a.begin_round(&alice).expect("the last round is complete");
    assert!(
        link.a.begin_round(&alice).is_none(),
        "no second round while one is under way"
    );
    link.send_from_a(step.frames);
    link.pump(&mut alice, &mut bob);
    assert!(link.a.is_caught_up() && link.b.is_caught_up());
    assert_eq!((link.a.rounds_completed(), link.b.rounds_completed()), (2, 2));
    same(&alice, &bob);
    assert_eq!(alice.stories().len(), 2);
}

#[test]
fn a_member_added_while_connected_is_pushed_and_their_units_are_relayed() {
    let mut g = group(37, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let mut link = Link::open(&alice, &bob);
    link.pump(&mut alice, &mut bob);

    let secrets = MembershipSecrets::generate(&mut rng(370));
    let carol_id = secrets.member();
    alice
        .add_member(secrets.public_keys(&alice.id()), Role::Member, NOW_MS)
        .unwrap();
    let step = link.a.push_membership(&alice);
    assert_eq!(step.frames.len(), 1);
    link.send_from_a(step.frames);
    link.pump(&mut alice, &mut bob);
    assert!(bob.membership().members.contains_key(&carol_id));
    assert!(
        link.a.push_membership(&alice).frames.is_empty(),
        "nothing the peer already holds is pushed again"
    );

    // Carol joins on her device and talks only to Alice; Alice relays her units to Bob.
    let mut carol = GroupSession::join(rng(371), secrets, &ordered_ops(&alice)).unwrap();
    carol.set_display_name("Carol").unwrap();
    for unit in carol.take_outbox() {
        alice.receive_unit(unit.bytes()).unwrap();
    }
    for unit in alice.take_accepted() {
        let step = link.a.push(&alice, &unit);
        link.send_from_a(step.frames);
    }
    link.pump(&mut alice, &mut bob);
    assert_eq!(bob.display_name(&carol_id), "Carol");
}

/// The change hashes inside the Unit messages of `sent` (opened with `key`).
fn changes_in(sent: &[Message], key: &alongside_core::crypto::SymmetricKey) -> Vec<automerge::ChangeHash> {
    use alongside_core::unit::{PayloadKind, SealedUnit};
    let mut out = Vec::new();
    for m in sent {
        let Message::Unit { bytes } = m else { continue };
        let payload = SealedUnit::decode(bytes).unwrap().open(key).unwrap();
        match payload.kind {
            PayloadKind::Bundle => out.extend(
                automerge::Bundle::try_from(payload.data.as_slice())
                    .unwrap()
                    .to_changes()
                    .unwrap()
                    .iter()
                    .map(|c| c.hash()),
            ),
            PayloadKind::Document => out.extend(
                automerge::Automerge::load(&payload.data)
                    .unwrap()
                    .get_changes(&[])
                    .iter()
                    .map(|c| c.hash()),
            ),
            PayloadKind::Change => out.push(automerge::Change::from_bytes(payload.data.clone()).unwrap().hash()),
        }
    }
    out
}

#[test]
fn an_interrupted_transfer_keeps_what_arrived_and_resumes_without_resending_it() {
    let mut g = group(38, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    // Alice typed long meeting notes, one keystroke per change, before Bob's device synced.
    let m = alice.add_meeting(&meeting(), NOW_MS).unwrap().to_hex();
    let text = "We opened with a moment of quiet, then went around the circle. ".repeat(20);
    for (i, ch) in text.chars().enumerate() {
        alice.splice_meeting_notes(&m, i, 0, &ch.to_string()).unwrap();
    }
    alice.take_outbox();
    let meeting_doc = alice.replicas().find(|r| r.id().kind == DocKind::Meeting).unwrap().id();
    let total = alice.replica(&meeting_doc).unwrap().change_hashes().len();
    let (_, key) = alice.epoch_key().unwrap();

    // Bob dials; Alice's transfer is cut into pieces of about 100 operations, and the
    // connection drops after the third piece arrived.
    let mut link = Link::open(&bob, &alice);
    link.b.set_chunk_ops(100);
    let mut meeting_units = 0;
    let cut = link.pump_while(&mut bob, &mut alice, |from_bob, msg| {
        if from_bob {
            return true;
        }
        if let Message::Unit { bytes } = msg
            && alongside_core::unit::SealedUnit::decode(bytes).unwrap().header().doc == meeting_doc
        {
            meeting_units += 1;
        }
        meeting_units <= 3
    });
    assert!(cut, "the transfer was interrupted");
    let first: Vec<_> = changes_in(&link.sent_b, &key);
    let kept = bob.replica(&meeting_doc).map_or(0, |r| r.change_hashes().len());
    assert!(kept > 0 && kept < total, "Bob kept {kept} of {total} changes");

    // They meet again: only what Bob still lacks travels, and he ends with everything.
    let mut again = Link::open(&bob, &alice);
    again.b.set_chunk_ops(100);
    again.pump(&mut bob, &mut alice);
    let second = changes_in(&again.sent_b, &key);
    assert!(
        second.iter().all(|h| !first.contains(h)),
        "a change that arrived before the cut was sent again"
    );
    assert_eq!(kept + second.iter().filter(|h| !first.contains(h)).count(), total);
    assert_eq!(bob.meetings()[0].notes, text);
    same(&alice, &bob);
}

#[test]
fn a_document_diff_naming_one_document_many_times_costs_one_transfer() {
    let mut g = group(39, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    alice.add_meeting(&meeting(), NOW_MS).unwrap();
    alice.take_outbox();
    // Bob dials; his document diff is tampered with to name Alice's new meeting 5,000 times.
    let (mut dialer, first_a) = PeerSync::start(&bob, alice.me(), true);
    let (mut acceptor, first_b) = PeerSync::start(&alice, bob.me(), false);
    let (mut to_alice, mut to_bob) = (first_a.frames, first_b.frames);
    let mut units_from_alice = 0;
    while !to_alice.is_empty() || !to_bob.is_empty() {
        for frame in std::mem::take(&mut to_alice) {
            let frame = match Message::decode(&frame[4..]).unwrap() {
                Message::DocDiff { mine, theirs } => {
                    let theirs = theirs.iter().flat_map(|id| std::iter::repeat_n(*id, 5_000)).collect();
                    Message::DocDiff { mine, theirs }.to_frame()
                }
                _ => frame,
            };
            let step = acceptor.handle_frame(&mut alice, &frame[4..]).unwrap();
            to_bob.extend(step.frames);
        }
        for frame in std::mem::take(&mut to_bob) {
            units_from_alice += usize::from(matches!(Message::decode(&frame[4..]).unwrap(), Message::Unit { .. }));
            let step = dialer.handle_frame(&mut bob, &frame[4..]).unwrap();
            to_alice.extend(step.frames);
        }
    }
    assert_eq!(units_from_alice, 1, "the meeting was sent once");
    assert_eq!(bob.meetings().len(), 1);
}
