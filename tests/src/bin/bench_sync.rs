//! Benchmark: what reconciliation costs, in bytes and rounds, through the real sync engine
//! (frames counted as they would go on the wire).
//!
//! Run: `cargo run --release -p alongside-tests --bin bench-sync`
//!
//! 1. Two replicas sharing 50,000 changes of one document and differing by 10 (5 new on
//!    each side): reconciliation bytes (negentropy messages and shared heads) against
//!    sending every change hash; rounds.
//! 2. A group of 2,000 unchanged documents plus 1 changed one: bytes of each kind.

use alongside_core::model::edits::NewMeeting;
use alongside_core::sync::Message;
use alongside_tests::{NOW_MS, group, sync_pair};

fn meeting(title: String) -> NewMeeting {
    NewMeeting {
        title,
        at: "2026-12-01T19:00:00Z".into(),
        place: None,
        facilitator: None,
        agenda: String::new(),
    }
}

fn bytes_by_kind(sent: &[Message]) -> (usize, usize, usize, usize) {
    let (mut reconcile, mut digest, mut units, mut other) = (0, 0, 0, 0);
    for m in sent {
        let n = m.to_frame().len();
        match m {
            Message::Reconcile { .. } | Message::Need { .. } => reconcile += n,
            Message::DocSet { .. } | Message::DocDiff { .. } | Message::DocPlan { .. } => digest += n,
            Message::Unit { .. } => units += n,
            _ => other += n,
        }
    }
    (reconcile, digest, units, other)
}

fn main() {
    println!("# bench-sync\n");
    // 1. 50,000 shared changes, 10 different.
    let mut g = group(51, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let m = alice.add_meeting(&meeting("Notes".into()), NOW_MS).unwrap().to_hex();
    for i in 0..49_999 {
        alice.splice_meeting_notes(&m, i % 100, 0, "x").unwrap();
    }
    alice.take_outbox();
    sync_pair(&mut alice, &mut bob);
    for i in 0..5 {
        alice.splice_meeting_notes(&m, i, 0, "a").unwrap();
        bob.splice_meeting_notes(&m, i, 0, "b").unwrap();
    }
    let (sa, sb, sent_a, sent_b) = sync_pair(&mut alice, &mut bob);
    let all: Vec<Message> = sent_a.into_iter().chain(sent_b).collect();
    let (reconcile, digest, units, other) = bytes_by_kind(&all);
    let changes = 50_010usize;
    let all_hashes = changes * 32;
    println!("## 1. {changes} changes, 10 different (5 on each side)\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| reconciliation bytes (negentropy + shared heads) | {reconcile} |");
    println!("| sending every change hash instead | {all_hashes} |");
    println!(
        "| ratio | {:.2} % (target <= 5 %) |",
        100.0 * reconcile as f64 / all_hashes as f64
    );
    println!(
        "| negentropy rounds (both sides) | {} |",
        sa.reconcile_rounds + sb.reconcile_rounds
    );
    println!("| document-set / units / other frame bytes | {digest} / {units} / {other} |");

    // 2. 2,000 unchanged documents and 1 changed.
    let mut g = group(52, &["Alice", "Bob"]);
    let mut bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let mut first = String::new();
    for i in 0..2_000 {
        let id = alice
            .add_meeting(&meeting(format!("Meeting {i}")), NOW_MS)
            .unwrap()
            .to_hex();
        if i == 0 {
            first = id;
        }
    }
    alice.take_outbox();
    sync_pair(&mut alice, &mut bob);
    alice.append_meeting_notes(&first, "One new line.").unwrap();
    let (_, _, sent_a, sent_b) = sync_pair(&mut alice, &mut bob);
    let all: Vec<Message> = sent_a.into_iter().chain(sent_b).collect();
    let (reconcile, digest, units, other) = bytes_by_kind(&all);
    println!("\n## 2. {} documents, 1 changed\n", alice.replicas().count());
    println!("| frames | bytes |");
    println!("| --- | --- |");
    println!("| document-set reconciliation (both sides) | {digest} |");
    println!("| reconciliation of the changed document | {reconcile} |");
    println!("| units (the changed document's new change) | {units} |");
    println!("| hello, membership, caught up | {other} |");
    println!("| total | {} |", digest + reconcile + units + other);
}
