//! Benchmark: what signing, sealing and validating cost over plain Automerge, on the real
//! automerge-paper editing trace replayed into a meeting's shared notes.
//!
//! Run: `cargo run --release -p alongside-tests --bin bench-sealed [-- --quick]`
//!
//! For each commit granularity (per 50 keystrokes, per keystroke) it builds the history
//! once in memory through the real group session (every change signed and sealed), then
//! measures, in the same run, against plain Automerge 0.12:
//! (a) open + validate + apply the whole history as one sealed saved document into an
//!     empty replica, vs `Automerge::load` of the saved document;
//! (b) a replica holding the first half receiving the second half as one sealed bundle,
//!     vs plain `apply_changes` of the second half onto a plain replica of the first half;
//! (c) bytes of the sealed forms vs the saved document, the bundle and the raw changes.
//! Figures are medians of several runs; ratios are what the targets speak about.
//! Also, in the same run: what the payload budget's pre-check (`core::payload_budget`)
//! costs against `Automerge::load` of the same saved document, and how the budget measures
//! it, for both histories and for the bench-gui shape (10,000 stories in one document).

use std::time::{Duration, Instant};

use alongside_core::group::GroupSession;
use alongside_core::ids::{ChangeHash, DocKind};
use alongside_core::model::edits::NewMeeting;
use alongside_core::payload_budget;
use alongside_core::unit::PayloadKind;
use alongside_tests::{NOW_MS, group, trace};
use automerge::Automerge;

struct History {
    changes: usize,
    meeting: String,
    doc: alongside_core::ids::DocId,
    alice: GroupSession,
    half_heads: Vec<ChangeHash>,
    half_unit: Vec<u8>,
    single_unit_bytes: usize,
    /// Fresh members with nothing (cloned per run by re-joining).
    ops: Vec<alongside_core::membership::SignedOp>,
    bob_secrets: alongside_core::group::MembershipSecrets,
}

fn build(t: &trace::Trace, per: usize) -> History {
    let mut g = group(42, &["Alice", "Bob"]);
    let bob = g.pop().unwrap();
    let mut alice = g.pop().unwrap();
    let meeting = alice
        .add_meeting(
            &NewMeeting {
                title: "Paper".into(),
                at: "2026-12-01T19:00:00Z".into(),
                place: None,
                facilitator: None,
                agenda: String::new(),
            },
            NOW_MS,
        )
        .unwrap()
        .to_hex();
    let doc = alice.replicas().find(|r| r.id().kind == DocKind::Meeting).unwrap().id();
    alice.take_outbox();
    let chunks: Vec<&[trace::Patch]> = t.patches.chunks(per).collect();
    let mut single_unit_bytes = 0;
    let mut half_heads = Vec::new();
    let mut half_unit = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let splices: Vec<(usize, usize, &str)> = chunk.iter().map(|p| (p.pos, p.delete, p.insert.as_str())).collect();
        alice.edit_meeting_notes(&meeting, &splices).unwrap();
        single_unit_bytes += alice.take_outbox().iter().map(|u| u.bytes().len()).sum::<usize>();
        if i + 1 == chunks.len() / 2 {
            half_heads = alice.replica(&doc).unwrap().heads();
            half_unit = alice.document_unit(&doc).unwrap().bytes().to_vec();
        }
    }
    assert_eq!(
        alice.meetings()[0].notes,
        t.end,
        "the replay reaches the trace's final text"
    );
    let changes = alice.replica(&doc).unwrap().index().len();
    History {
        changes,
        meeting,
        doc,
        ops: alongside_tests::ordered_ops(&alice),
        bob_secrets: bob.secrets().clone(),
        alice,
        half_heads,
        half_unit,
        single_unit_bytes,
    }
}

fn fresh_bob(h: &History, seed: u64) -> GroupSession {
    GroupSession::join(alongside_tests::rng(seed), h.bob_secrets.clone(), &h.ops).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn kb(n: usize) -> String {
    format!("{:.1} KB", n as f64 / 1000.0)
}

fn measure(label: &str, t: &trace::Trace, per: usize, runs: usize) {
    let started = Instant::now();
    let mut h = build(t, per);
    let _ = &h.meeting;
    let built = started.elapsed();
    let saved = h.alice.replica(&h.doc).unwrap().save();
    let final_heads = h.alice.replica(&h.doc).unwrap().heads();
    let plain_full = Automerge::load(&saved).unwrap();
    let half: Vec<automerge::ChangeHash> = h.half_heads.iter().map(|x| automerge::ChangeHash(x.0)).collect();
    let second_half = plain_full.get_changes(&half);
    let raw: usize = plain_full.get_changes(&[]).iter().map(|c| c.raw_bytes().len()).sum();
    let all_hashes: Vec<automerge::ChangeHash> = plain_full.get_changes_meta(&[]).into_iter().map(|m| m.hash).collect();
    let bundle_all = plain_full.bundle(all_hashes).unwrap().bytes().len();
    let doc_unit = h.alice.document_unit(&h.doc).unwrap().bytes().to_vec();
    let full_bundle_unit = h.alice.catch_up_unit(&h.doc, &[]).unwrap().bytes().len();
    let catch_up = h.alice.catch_up_unit(&h.doc, &h.half_heads).unwrap().bytes().to_vec();

    // (a) whole document into an empty replica.
    let (mut plain_a, mut ours_a) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t0 = Instant::now();
        let d = Automerge::load(&saved).unwrap();
        plain_a.push(t0.elapsed());
        drop(d);
        let mut bob = fresh_bob(&h, 100 + i as u64);
        let t0 = Instant::now();
        bob.receive_unit(&doc_unit).unwrap();
        ours_a.push(t0.elapsed());
        assert_eq!(bob.replica(&h.doc).unwrap().heads(), final_heads);
    }

    // (b) second half as a catch-up bundle onto a replica holding the first half.
    let (mut plain_b, mut ours_b) = (Vec::new(), Vec::new());
    let first_half_saved = { plain_full.fork_at(&half).unwrap().save() };
    for i in 0..runs {
        let mut d = Automerge::load(&first_half_saved).unwrap();
        let changes = second_half.clone();
        let t0 = Instant::now();
        d.apply_changes(changes).unwrap();
        plain_b.push(t0.elapsed());
        let mut bob = fresh_bob(&h, 200 + i as u64);
        bob.receive_unit(&h.half_unit).unwrap();
        let t0 = Instant::now();
        bob.receive_unit(&catch_up).unwrap();
        ours_b.push(t0.elapsed());
        assert_eq!(bob.replica(&h.doc).unwrap().heads(), final_heads);
    }
    // Where (b) spends its time: decoding the bundle into changes is work plain
    // apply_changes (handed ready Change values) does not do.
    let bundle_bytes = h
        .alice
        .replica(&h.doc)
        .unwrap()
        .bundle_payload(&h.half_heads)
        .data
        .clone();
    let mut decode = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let b = automerge::Bundle::try_from(bundle_bytes.as_slice()).unwrap();
        let c = b.to_changes().unwrap();
        decode.push(t0.elapsed());
        drop(c);
    }
    // (d) one live change (a burst of typing) arriving at a replica holding everything.
    let (mut plain_d, mut ours_d) = (Vec::new(), Vec::new());
    let end = h.alice.meetings()[0].notes.chars().count();
    h.alice
        .edit_meeting_notes(&h.meeting, &[(end, 0, "\n% one more line")])
        .unwrap();
    let live = h.alice.take_outbox().pop().unwrap().bytes().to_vec();
    let live_change = {
        let after = Automerge::load(&h.alice.replica(&h.doc).unwrap().save()).unwrap();
        after.get_changes(&plain_full.get_heads())
    };
    for i in 0..runs {
        let mut d = plain_full.clone();
        let t0 = Instant::now();
        d.apply_changes(live_change.clone()).unwrap();
        plain_d.push(t0.elapsed());
        let mut bob = fresh_bob(&h, 300 + i as u64);
        bob.receive_unit(&doc_unit).unwrap();
        let t0 = Instant::now();
        bob.receive_unit(&live).unwrap();
        ours_d.push(t0.elapsed());
    }
    let (pd, od) = (median(plain_d), median(ours_d));
    // Where (a) spends its time beyond load: Automerge listing the change metadata that
    // validation needs (every change's actor, sequence number, hash and dependencies).
    let mut meta = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let m = plain_full.get_changes_meta(&[]);
        meta.push(t0.elapsed());
        drop(m);
    }
    let meta = median(meta);
    // Where (a) spends its time before Automerge: the payload budget's own walk over the
    // saved document (every deflated column inflated under its cap, every run counted).
    let mut pre = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        std::hint::black_box(payload_budget::measure(PayloadKind::Document, &saved).unwrap());
        pre.push(t0.elapsed());
    }
    let pre = median(pre);
    let budget = payload_budget::measure(PayloadKind::Document, &saved).unwrap();
    let (pa, oa, pb, ob) = (median(plain_a), median(ours_a), median(plain_b), median(ours_b));
    let decode = median(decode);
    println!(
        "\n## {label}: {} changes (history built in {:.1} s)\n",
        h.changes,
        built.as_secs_f64()
    );
    println!("| measure | plain Automerge | Alongside (sealed, validated) | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| (a) whole document into an empty replica | load {:.1} ms | {:.1} ms | {:.2}x | <= 1.3x |",
        ms(pa),
        ms(oa),
        ms(oa) / ms(pa)
    );
    println!(
        "| (a) of which: Automerge listing the change metadata | - | {:.1} ms | - | (reported) |",
        ms(meta)
    );
    println!(
        "| (a) of which: the payload budget's pre-check | load {:.1} ms | {:.2} ms | {:.3}x | (reported) |",
        ms(pa),
        ms(pre),
        ms(pre) / ms(pa)
    );
    println!(
        "| (a) the saved document as the budget measures it | - | {} ops, {} changes, {} inflated, longest value {} B | - | <= {} ops, {} MiB |",
        budget.ops,
        budget.changes,
        kb(budget.inflated_bytes as usize),
        budget.largest_value,
        payload_budget::MAX_OPS,
        payload_budget::MAX_INFLATED >> 20
    );
    println!(
        "| (b) second half as catch-up | apply_changes {:.1} ms | {:.1} ms | {:.2}x | <= 1.2x |",
        ms(pb),
        ms(ob),
        ms(ob) / ms(pb)
    );
    println!(
        "| (b) of which: decoding the bundle into changes | - | {:.1} ms | - | (reported) |",
        ms(decode)
    );
    println!(
        "| (d) one live change into the whole document | apply_changes {:.2} ms | {:.2} ms | {:.1}x | (reported) |",
        ms(pd),
        ms(od),
        ms(od) / ms(pd)
    );
    println!(
        "| (c) sealed saved document | saved {} | {} | {:.3}x | <= 1.1x |",
        kb(saved.len()),
        kb(doc_unit.len()),
        doc_unit.len() as f64 / saved.len() as f64
    );
    println!(
        "| (c) sealed bundle of everything | bundle {} | {} | {:.3}x | (reported) |",
        kb(bundle_all),
        kb(full_bundle_unit),
        full_bundle_unit as f64 / bundle_all as f64
    );
    println!(
        "| (c) one sealed unit per change | raw changes {} | {} | {:.3}x | (reported) |",
        kb(raw),
        kb(h.single_unit_bytes),
        h.single_unit_bytes as f64 / raw as f64
    );
    println!(
        "| (c) catch-up bundle of the second half | - | {} | - | (reported) |",
        kb(catch_up.len())
    );
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = trace::data_dir().ok_or_else(|| anyhow::anyhow!("benchmark data not found; set ALONGSIDE_DATA"))?;
    let t = trace::load(&dir.join("editing-traces/automerge-paper.json.gz"))?;
    println!("# bench-sealed: automerge-paper trace, {} keystrokes", t.patches.len());
    measure("per 50 keystrokes", &t, 50, if quick { 3 } else { 7 });
    if !quick {
        measure("per keystroke", &t, 1, 3);
    }
    stories(if quick { 1_000 } else { 10_000 });
    Ok(())
}

/// The bench-gui shape (N stories, every fifth with content warnings, in one member's
/// document) as the payload budget measures its saved document, and what the pre-check
/// costs against Automerge's load of it.
fn stories(n: usize) {
    let mut g = group(43, &["Sam"]);
    let sam = &mut g[0];
    for i in 0..n {
        let story = alongside_core::model::edits::NewStory {
            title: format!("Week {i}: one day at a time"),
            body: format!(
                "Story {i}. Some days went better than others; I called my sponsor twice and went to \
                 the Tuesday meeting. What helped most was writing down one thing I was grateful for \
                 each evening, even on the hard ones."
            ),
            warnings: if i % 5 == 0 {
                vec!["Cravings".into(), "Grief and loss".into()]
            } else {
                vec![]
            },
            no_replies: i % 7 == 0,
        };
        sam.add_story(&story, NOW_MS).unwrap();
        sam.take_outbox();
    }
    let doc = alongside_core::ids::DocId::member_doc(&sam.me());
    let saved = sam.replica(&doc).unwrap().save();
    let (mut load, mut pre) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        drop(Automerge::load(&saved).unwrap());
        load.push(t0.elapsed());
        let t0 = Instant::now();
        std::hint::black_box(payload_budget::measure(PayloadKind::Document, &saved).unwrap());
        pre.push(t0.elapsed());
    }
    let m = payload_budget::measure(PayloadKind::Document, &saved).unwrap();
    let (load, pre) = (median(load), median(pre));
    println!("\n## {n} stories in one member document (the bench-gui shape)\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| saved document | {} |", kb(saved.len()));
    println!(
        "| as the budget measures it | {} ops, {} changes, {} inflated, longest value {} B |",
        m.ops,
        m.changes,
        kb(m.inflated_bytes as usize),
        m.largest_value
    );
    println!(
        "| pre-check vs Automerge::load | {:.2} ms vs {:.1} ms ({:.3}x) |",
        ms(pre),
        ms(load),
        ms(pre) / ms(load)
    );
}
