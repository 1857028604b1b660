//! Concurrent meeting notes on a real trace: the `friendsforever` trace (two people typing
//! into one text at once, 26,078 transactions, 2,258 merges) replayed by two members, each
//! transaction one signed, sealed change; each member receives, as sealed units, exactly
//! the transactions the trace says it had seen before typing. Finally the two reconcile
//! through the sync engine, and both must hold the trace's final text.

use std::path::Path;

use alongside_core::model::edits::NewMeeting;
use alongside_tests::{NOW_MS, group, sync_pair};

struct Txn {
    agent: usize,
    parents: Vec<usize>,
    patches: Vec<(usize, usize, String)>,
}

fn load() -> (String, Vec<Txn>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/friendsforever.json.gz");
    let file = std::fs::File::open(&path).unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(file), &mut json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let txns = v["txns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Txn {
            agent: t["agent"].as_u64().unwrap() as usize,
            parents: t["parents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as usize)
                .collect(),
            patches: t["patches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap() as usize,
                        p[1].as_u64().unwrap() as usize,
                        p[2].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
        })
        .collect();
    (v["endContent"].as_str().unwrap().to_string(), txns)
}

#[test]
fn two_members_typing_at_once_end_with_the_traces_final_text() {
    let (end, txns) = load();
    let mut members = group(41, &["Agent zero", "Agent one"]);
    let meeting = members[0]
        .add_meeting(
            &NewMeeting {
                title: "Shared notes".into(),
                at: "2026-12-01T19:00:00Z".into(),
                place: None,
                facilitator: None,
                agenda: String::new(),
            },
            NOW_MS,
        )
        .unwrap()
        .to_hex();
    for u in members[0].take_outbox() {
        members[1].receive_unit(u.bytes()).unwrap();
    }
    // A transaction the other agent names as a parent must end a change, so it can be
    // delivered alone; between such points an agent's consecutive transactions are committed
    // together (as an app commits a burst of typing), which keeps the test fast.
    let mut boundary = vec![false; txns.len()];
    for t in &txns {
        for &p in &t.parents {
            if txns[p].agent != t.agent {
                boundary[p] = true;
            }
        }
    }
    let mut units: Vec<Option<Vec<u8>>> = vec![None; txns.len()];
    let mut had = vec![vec![false; txns.len()]; 2];
    let mut batch: [Vec<(usize, usize, String)>; 2] = [Vec::new(), Vec::new()];
    let flush = |members: &mut Vec<alongside_core::group::GroupSession>,
                 batch: &mut Vec<(usize, usize, String)>,
                 agent: usize|
     -> Option<Vec<u8>> {
        if batch.is_empty() {
            return None;
        }
        let splices: Vec<(usize, usize, &str)> = batch.iter().map(|(p, d, s)| (*p, *d, s.as_str())).collect();
        members[agent].edit_meeting_notes(&meeting, &splices).unwrap();
        batch.clear();
        let mut out = members[agent].take_outbox();
        assert!(out.len() <= 1);
        out.pop().map(|u| u.bytes().to_vec())
    };
    let mut last_of = [None::<usize>; 2];
    for (i, t) in txns.iter().enumerate() {
        // Deliver exactly what this agent had seen: the closure of the parents.
        let mut missing = Vec::new();
        let mut stack = t.parents.clone();
        while let Some(p) = stack.pop() {
            if !had[t.agent][p] {
                had[t.agent][p] = true;
                missing.push(p);
                stack.extend(&txns[p].parents);
            }
        }
        if !missing.is_empty() {
            if let (Some(unit), Some(last)) = (flush(&mut members, &mut batch[t.agent], t.agent), last_of[t.agent]) {
                units[last] = Some(unit);
            }
            missing.sort_unstable();
            for p in missing {
                if let Some(u) = &units[p] {
                    members[t.agent].receive_unit(u).expect("an honest unit");
                }
            }
        }
        batch[t.agent].extend(t.patches.iter().cloned());
        last_of[t.agent] = Some(i);
        had[t.agent][i] = true;
        if boundary[i] {
            units[i] = flush(&mut members, &mut batch[t.agent], t.agent);
        }
    }
    for agent in 0..2 {
        if let (Some(unit), Some(last)) = (flush(&mut members, &mut batch[agent], agent), last_of[agent]) {
            units[last] = Some(unit);
        }
    }
    let (mut zero, mut one) = {
        let mut it = members.into_iter();
        (it.next().unwrap(), it.next().unwrap())
    };
    sync_pair(&mut zero, &mut one);
    assert_eq!(zero.meetings()[0].notes, end);
    assert_eq!(one.meetings()[0].notes, end);
    assert_eq!(zero.rejected_count() + one.rejected_count(), 0);
}
