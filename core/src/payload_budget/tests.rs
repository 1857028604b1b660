//! Real payloads measure as Automerge counts them; crafted bombs are refused within budget.

use automerge::legacy::OpType;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjType, ROOT};

use super::*;
use crate::unit::PayloadKind::{Bundle, Change as OneChange, Document};

/// A budget small enough that a test bomb is cheap: 1 MiB inflated, 10,000 operations.
const SMALL: Budget = Budget {
    inflated: 1 << 20,
    ops: 10_000,
    value_len: 1_000,
};

/// Two actors: map entries, a long value, and text typed, deleted and merged.
fn sample() -> AutoCommit {
    let mut a = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
    let notes = a.put_object(ROOT, "notes", ObjType::Text).unwrap();
    a.put(ROOT, "title", "Tuesday").unwrap();
    a.put(ROOT, "long", "x".repeat(5_000)).unwrap();
    a.commit();
    for i in 0..40 {
        a.splice_text(&notes, 0, 0, &format!("line {i} of the notes\n"))
            .unwrap();
        a.commit();
    }
    let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
    b.splice_text(&notes, 10, 30, "").unwrap();
    b.put(ROOT, "title", "Wednesday").unwrap();
    b.commit();
    a.splice_text(&notes, 0, 5, "Start").unwrap();
    a.commit();
    a.merge(&mut b).unwrap();
    a
}

fn changes_of(doc: &mut AutoCommit) -> Vec<Change> {
    doc.get_changes(&[])
}

/// Rows a change adds to a saved document: its operations but its deletions.
fn stored_rows(change: &Change) -> u64 {
    let ops = change.decode().operations;
    ops.iter().filter(|o| !matches!(o.action, OpType::Delete)).count() as u64
}

#[test]
fn a_saved_document_measures_to_the_changes_and_operations_automerge_holds() {
    let mut doc = sample();
    let saved = doc.save();
    let m = measure(Document, &saved).unwrap();
    let changes = changes_of(&mut doc);
    assert_eq!(m.chunks, 1);
    assert_eq!(m.changes, changes.len() as u64);
    assert_eq!(m.ops, changes.iter().map(stored_rows).sum::<u64>());
    assert_eq!(m.largest_value, 5_000);
    assert!(m.inflated_bytes > 0, "save() deflates its larger columns");
    // Uncompressed, the same counts and nothing inflated.
    let plain = measure(Document, &doc.save_nocompress()).unwrap();
    assert_eq!((plain.ops, plain.changes, plain.inflated_bytes), (m.ops, m.changes, 0));
}

#[test]
fn one_change_plain_or_compressed_measures_to_its_own_length() {
    let mut doc = sample();
    for mut change in changes_of(&mut doc) {
        let m = measure(OneChange, change.raw_bytes()).unwrap();
        assert_eq!((m.ops, m.changes, m.inflated_bytes), (change.len() as u64, 1, 0));
        let packed = change.bytes().to_vec();
        let again = measure(OneChange, &packed).unwrap();
        assert_eq!((again.ops, again.changes), (m.ops, 1));
        if packed[8] == COMPRESSED {
            assert_eq!(again.inflated_bytes as usize, change.raw_bytes().len() - 9 - 2);
        }
    }
    let long = changes_of(&mut doc).into_iter().find(|c| c.len() == 3).unwrap();
    assert_eq!(measure(OneChange, long.raw_bytes()).unwrap().largest_value, 5_000);
}

#[test]
fn a_bundle_measures_to_what_automerge_unbundles() {
    let mut doc = sample();
    let hashes: Vec<_> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
    for part in [&hashes[..], &hashes[10..], &hashes[..1]] {
        let bundle = doc.document().bundle(part.iter().copied()).unwrap();
        let m = measure(Bundle, bundle.bytes()).unwrap();
        let unbundled = automerge::Bundle::try_from(bundle.bytes())
            .unwrap()
            .to_changes()
            .unwrap();
        assert_eq!(m.changes, unbundled.len() as u64);
        assert_eq!(m.ops, unbundled.iter().map(|c| c.len() as u64).sum::<u64>());
    }
}

#[test]
fn a_payload_of_the_wrong_kind_or_with_bytes_after_it_is_refused() {
    let mut doc = sample();
    let saved = doc.save();
    let change = changes_of(&mut doc)[0].raw_bytes().to_vec();
    assert!(matches!(measure(OneChange, &saved), Err(Refusal::Malformed(_))));
    assert!(matches!(measure(Bundle, &change), Err(Refusal::Malformed(_))));
    let twice = [&change[..], &change[..]].concat();
    assert!(matches!(measure(OneChange, &twice), Err(Refusal::Malformed(_))));
    // A document payload may hold several chunks, as `Automerge::load` reads them.
    let both = measure(Document, &[&saved[..], &change[..]].concat()).unwrap();
    assert_eq!(both.chunks, 2);
    assert_eq!(measure(Document, &[]).unwrap(), Measure::default());
}

#[test]
fn every_truncation_of_a_real_payload_is_refused() {
    let mut doc = sample();
    let saved = doc.save();
    let change = changes_of(&mut doc)[1].raw_bytes().to_vec();
    let hashes: Vec<_> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let bundle = doc.document().bundle(hashes).unwrap().bytes().to_vec();
    for (kind, bytes) in [(Document, &saved), (OneChange, &change), (Bundle, &bundle)] {
        for cut in 1..bytes.len() {
            assert!(
                matches!(measure(kind, &bytes[..cut]), Err(Refusal::Malformed(_))),
                "{kind:?} cut at {cut} of {}",
                bytes.len()
            );
        }
    }
}

fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn chunk(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = [&MAGIC[..], &[0, 0, 0, 0, ty]].concat();
    uleb(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A column list: count, then (specification, length) per column; then the data.
fn columns(cols: &[(u32, &[u8])], out: &mut Vec<u8>) -> Vec<u8> {
    uleb(cols.len() as u64, out);
    for (spec, data) in cols {
        uleb(u64::from(*spec), out);
        uleb(data.len() as u64, out);
    }
    cols.iter().flat_map(|(_, d)| d.to_vec()).collect()
}

/// A change body: no deps, a 16-byte actor, seq 1, start op 1, no message, `cols`.
fn change_body(cols: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![0, 16];
    out.extend_from_slice(&[7; 16]);
    out.extend_from_slice(&[1, 1, 0, 0, 0]);
    let data = columns(cols, &mut out);
    [out, data].concat()
}

/// A document body with no actors, heads or changes, and `cols` as its op columns.
fn document_body(cols: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![0, 0, 0];
    let data = columns(cols, &mut out);
    [out, data].concat()
}

const DEFLATE: u32 = 0b1000;

#[test]
fn a_compressed_change_that_inflates_past_the_budget_is_refused_at_the_budget() {
    // 1 MiB + 1 of zeros: a 6.6 KB stream.
    let bomb = chunk(COMPRESSED, &deflated_zeros(SMALL.inflated + 1));
    assert!(bomb.len() < 7_000);
    let refused = measure_within(OneChange, &bomb, &SMALL);
    assert_eq!(refused, Err(Refusal::Inflated { max: SMALL.inflated }));
    // Exactly the budget inflates (and is then no change at all).
    let edge = chunk(COMPRESSED, &deflated_zeros(SMALL.inflated));
    assert!(matches!(
        measure_within(OneChange, &edge, &SMALL),
        Err(Refusal::Malformed(_))
    ));
    // At the real budget: a 420 KB stream that would inflate past 64 MiB.
    let big = chunk(COMPRESSED, &deflated_zeros(MAX_INFLATED + 1));
    assert_eq!(measure(OneChange, &big), Err(Refusal::Inflated { max: MAX_INFLATED }));
}

#[test]
fn a_deflated_document_or_bundle_column_that_inflates_past_the_budget_is_refused() {
    let zeros = deflated_zeros(SMALL.inflated + 1);
    let doc = chunk(DOCUMENT, &document_body(&[(ACTION | DEFLATE, &zeros)]));
    assert_eq!(
        measure_within(Document, &doc, &SMALL),
        Err(Refusal::Inflated { max: SMALL.inflated })
    );
    // Two columns each under the budget but over it together.
    let half = deflated_zeros(SMALL.inflated / 2 + 1);
    // (Zero bytes read as a boolean column of empty runs, and as raw value bytes.)
    let cols: [(u32, &[u8]); 2] = [
        (Column::spec(3, 4) | DEFLATE, &half),
        (Column::spec(5, 7) | DEFLATE, &half),
    ];
    let mut body = vec![0, 0];
    let no_changes = columns(&[], &mut body);
    let data = columns(&cols, &mut body);
    let bundle = chunk(BUNDLE, &[body, no_changes, data].concat());
    assert_eq!(
        measure_within(Bundle, &bundle, &SMALL),
        Err(Refusal::Inflated { max: SMALL.inflated })
    );
}

#[test]
fn a_run_claiming_billions_of_operations_is_refused_without_expanding_it() {
    // Action column: one run of five billion `set` actions, in six bytes.
    let mut run = Vec::new();
    sleb(5_000_000_000, &mut run);
    run.push(1);
    let change = chunk(CHANGE, &change_body(&[(ACTION, &run)]));
    assert_eq!(measure(OneChange, &change), Err(Refusal::TooManyOps { max: MAX_OPS }));
    // A boolean column counting 2^62 falses.
    let mut falses = Vec::new();
    uleb(1 << 62, &mut falses);
    let doc = chunk(DOCUMENT, &document_body(&[(Column::spec(3, 4), &falses)]));
    assert_eq!(measure(Document, &doc), Err(Refusal::TooManyOps { max: MAX_OPS }));
    // Within budget, the same encoding counts exactly.
    let mut small = Vec::new();
    sleb(1_000, &mut small);
    small.push(1);
    let ok = measure(OneChange, &chunk(CHANGE, &change_body(&[(ACTION, &small)]))).unwrap();
    assert_eq!((ok.ops, ok.changes), (1_000, 1));
}

#[test]
fn lengths_that_point_past_the_end_are_refused() {
    let mut long_chunk = chunk(CHANGE, &change_body(&[]));
    long_chunk[9] += 1; // the chunk claims one byte more than there is
    assert_eq!(
        measure(OneChange, &long_chunk),
        Err(Refusal::Malformed("a length points past the end"))
    );
    // A column longer than the chunk.
    let mut body = vec![0, 0, 0, 1];
    uleb(u64::from(ACTION), &mut body);
    uleb(u64::MAX >> 1, &mut body);
    assert!(matches!(
        measure(Document, &chunk(DOCUMENT, &body)),
        Err(Refusal::Malformed(_))
    ));
    // A dependency count no bytes could hold.
    let mut deps = Vec::new();
    uleb(1 << 40, &mut deps);
    assert!(matches!(
        measure(OneChange, &chunk(CHANGE, &deps)),
        Err(Refusal::Malformed(_))
    ));
    // A literal run of 2^40 values in a one-byte column.
    let mut lit = Vec::new();
    sleb(-(1 << 40), &mut lit);
    lit.push(1);
    let doc = chunk(DOCUMENT, &document_body(&[(ACTION, &lit)]));
    assert_eq!(
        measure(Document, &doc),
        Err(Refusal::Malformed("a literal run is longer than its column"))
    );
}

#[test]
fn a_value_longer_than_any_local_edit_writes_is_refused_in_every_payload_kind() {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "name", "n".repeat(MAX_VALUE_LEN as usize + 1)).unwrap();
    doc.commit();
    let too_long = Err(Refusal::ValueTooLong {
        len: MAX_VALUE_LEN + 1,
        max: MAX_VALUE_LEN,
    });
    assert_eq!(measure(Document, &doc.save()), too_long);
    let mut change = changes_of(&mut doc).pop().unwrap();
    assert_eq!(measure(OneChange, change.raw_bytes()), too_long);
    assert_eq!(measure(OneChange, &change.bytes()), too_long);
    let bundle = doc.document().bundle([change.hash()]).unwrap();
    assert_eq!(measure(Bundle, bundle.bytes()), too_long);
    // A key that long is refused as well.
    let mut keyed = AutoCommit::new();
    keyed.put(ROOT, "k".repeat(MAX_VALUE_LEN as usize + 1), 1).unwrap();
    assert!(matches!(
        measure(Document, &keyed.save()),
        Err(Refusal::ValueTooLong { .. })
    ));
    // And the longest body a local edit writes passes.
    let mut ok = AutoCommit::new();
    ok.put(ROOT, "body", "b".repeat(MAX_VALUE_LEN as usize)).unwrap();
    assert_eq!(measure(Document, &ok.save()).unwrap().largest_value, MAX_VALUE_LEN);
}
