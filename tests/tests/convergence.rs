//! Property: random edits by several members, sealed singly, as catch-up bundles and as
//! whole saved documents, delivered to everyone in random order with duplicates, leave
//! every replica validated and identical.

use std::collections::BTreeMap;

use alongside_core::group::GroupSession;
use alongside_core::ids::{ChangeHash, DocId};
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use alongside_tests::{NOW_MS, group, rng};
use proptest::prelude::*;
use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// One random edit by member `m`, if it applies to what `m` has.
fn random_edit(s: &mut GroupSession, r: &mut StdRng, step: usize) {
    let now = NOW_MS + step as i64 * 60_000;
    match r.random_range(0..8) {
        0 => {
            let story = NewStory {
                title: format!("story {step}"),
                body: format!("body {step}"),
                warnings: if r.random_bool(0.5) {
                    vec!["grief".into()]
                } else {
                    vec![]
                },
                no_replies: r.random_bool(0.2),
            };
            s.add_story(&story, now).unwrap();
        }
        1 => {
            s.add_goal(&format!("goal {step}"), None, &[], now).unwrap();
        }
        2 => {
            let mine: Vec<String> = s
                .goals(now)
                .into_iter()
                .filter(|g| g.author.id == s.me().to_hex())
                .map(|g| g.id)
                .collect();
            if let Some(goal) = mine.first() {
                let c = NewCheckIn {
                    date: alongside_core::model::date_of(now),
                    kind: if r.random_bool(0.3) {
                        CheckInKind::Setback
                    } else {
                        CheckInKind::Progress
                    },
                    mood: Some(r.random_range(1..=5)),
                    craving: Some(r.random_range(0..=10)),
                    halt: vec![],
                    note: String::new(),
                };
                s.check_in(goal, &c, now).unwrap();
            }
        }
        3 => {
            let m = NewMeeting {
                title: format!("meeting {step}"),
                at: "2026-12-01T19:00:00Z".into(),
                place: None,
                facilitator: None,
                agenda: String::new(),
            };
            s.add_meeting(&m, now).unwrap();
        }
        4 | 5 => {
            // Concurrent typing into shared notes.
            let meetings = s.meetings();
            if let Some(m) = meetings.get(
                r.random_range(0..meetings.len().max(1))
                    .min(meetings.len().saturating_sub(1)),
            ) {
                let len = m.notes.chars().count();
                let pos = r.random_range(0..=len);
                let del = if len > pos && r.random_bool(0.3) { 1 } else { 0 };
                s.splice_meeting_notes(&m.id, pos, del, &format!("w{step} ")).unwrap();
            }
        }
        6 => {
            let stories = s.stories();
            if let Some(st) = stories.first() {
                if st.no_replies {
                    s.react(&st.id, "support", now).unwrap();
                } else {
                    s.reply(&st.id, &format!("reply {step}"), now).unwrap();
                }
            }
        }
        _ => {
            s.reach_out(&format!("reach {step}"), &[], now).unwrap();
        }
    }
}

fn snapshot(s: &GroupSession) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        s.stories(),
        s.goals(NOW_MS),
        s.meetings(),
        s.reach_outs()
    )
}

fn heads_by_doc(s: &GroupSession) -> BTreeMap<DocId, Vec<ChangeHash>> {
    s.replicas().map(|r| (r.id(), r.heads())).collect()
}

fn run(seed: u64, steps: usize) {
    let mut members = group(seed, &["Alice", "Bob", "Carol"]);
    let mut r = rng(seed);
    let mut pool: Vec<Vec<u8>> = Vec::new();
    // Heads each member held earlier, for catch-up bundles from an older point.
    let mut history: Vec<(usize, DocId, Vec<ChangeHash>)> = Vec::new();
    for step in 0..steps {
        let who = r.random_range(0..members.len());
        random_edit(&mut members[who], &mut r, step);
        pool.extend(members[who].take_outbox().into_iter().map(|u| u.bytes().to_vec()));
        // Sometimes deliver part of the pool to someone, so later edits build on others'.
        if r.random_bool(0.4) && !pool.is_empty() {
            let to = r.random_range(0..members.len());
            for _ in 0..r.random_range(1..=pool.len()) {
                let u = &pool[r.random_range(0..pool.len())];
                let _ = members[to].receive_unit(u);
            }
            pool.extend(members[to].take_outbox().into_iter().map(|u| u.bytes().to_vec()));
        }
        // Sometimes a member packs a document as a bundle or as a whole saved document.
        if r.random_bool(0.25) {
            let from = r.random_range(0..members.len());
            let docs: Vec<DocId> = members[from].replicas().map(|x| x.id()).collect();
            let doc = docs[r.random_range(0..docs.len())];
            history.push((from, doc, members[from].replica(&doc).unwrap().heads()));
            let earlier: Vec<ChangeHash> = history
                .iter()
                .filter(|(_, d, _)| *d == doc)
                .map(|(_, _, h)| h.clone())
                .nth(r.random_range(0..3))
                .unwrap_or_default();
            let unit = if r.random_bool(0.5) {
                members[from].catch_up_unit(&doc, &earlier)
            } else {
                members[from].document_unit(&doc)
            };
            pool.extend(unit.map(|u| u.bytes().to_vec()));
        }
    }
    // Heal: everyone receives everything, in a random order, with duplicates.
    let mut delivery = pool.clone();
    delivery.extend(pool.iter().take(pool.len() / 2).cloned());
    for m in members.iter_mut() {
        delivery.shuffle(&mut r);
        for u in &delivery {
            m.receive_unit(u).expect("every honest unit is accepted");
        }
        assert!(m.take_outbox().is_empty());
        assert_eq!(m.pending_count(), 0, "a unit still waits for dependencies");
        assert_eq!(m.rejected_count(), 0);
    }
    let first = (heads_by_doc(&members[0]), snapshot(&members[0]));
    for m in &members[1..] {
        assert_eq!(heads_by_doc(m), first.0, "document heads differ");
        assert_eq!(snapshot(m), first.1, "views differ");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xA10_4651DE),
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_edits_delivered_in_any_order_converge(seed in any::<u64>(), steps in 5usize..40) {
        run(seed, steps);
    }
}

#[test]
fn a_fixed_long_schedule_converges() {
    run(20261129, 120);
}
