//! Measuring an untrusted Automerge payload before Automerge sees it.
//!
//! Automerge 0.12 inflates every DEFLATE-compressed piece of what it parses — a compressed
//! change chunk, or a column with the deflate bit in a document or bundle — as soon as it
//! meets it, into a buffer as large as the stream says; and it materialises every
//! operation that run-length encoded columns describe, where one run of a few bytes can
//! claim billions. Both happen before anything asks who wrote the bytes: a 1 MiB unit
//! that inflated to 1 GiB took a node from 236 MB to 3.2 GB.
//!
//! So [`measure`] walks the chunk format itself, as Automerge 0.12's own parsers read it
//! (`storage/chunk.rs`, `change.rs`, `document.rs`, `bundle/storage.rs`,
//! `columns/raw_column.rs`): magic bytes, checksum, chunk type and a uLEB128 length, then
//! the layout of each chunk type, every length checked against the bytes present before
//! it is trusted. Each deflated piece is inflated with an output cap of what is left of
//! [`MAX_INFLATED`], so a bomb stops at the budget and never past it. Operations and
//! changes are counted from the run headers of their columns, without expanding a run,
//! and the value metadata column (`len << 4 | type`) gives the longest single value.
//!
//! The check is for bytes from others ([`crate::replica`] runs it on every received
//! payload). What this device saved itself is authenticated by the profile key and is not
//! measured; what it sends is measured first, so it never sends what a peer would refuse
//! (see [`crate::replica::Replica::catch_up_payloads`]). Byte layout: `docs/FORMAT.md`.

mod columns;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use thiserror::Error;

use crate::unit::PayloadKind;
use columns::{Column, Cursor, DeltaValues, Encoding};

/// Most bytes the deflated pieces of one payload may inflate to, together: the largest
/// unit (a payload that needs more than a whole unit's worth of room is refused).
pub const MAX_INFLATED: u64 = crate::unit::MAX_UNIT_LEN as u64;
/// Most operations one payload may hold, and most items any one of its columns may
/// describe. Senders cut transfers at [`crate::sync::DEFAULT_CHUNK_OPS`] (1,000,000);
/// this leaves room for a cut that must wait for a signed change (see `docs/PROTOCOL.md`).
/// The largest real documents measured hold 182,323 (the automerge-paper trace, 259,779
/// changes) and 64,006 (10,000 stories): `docs/PERFORMANCE.md`.
pub const MAX_OPS: u64 = 4_000_000;
/// Longest single string or byte string a payload may carry (a value, a map key, a mark
/// name, a change message): the longest text a local edit writes as one value,
/// [`crate::model::edits::MAX_BODY`].
pub const MAX_VALUE_LEN: u64 = crate::model::edits::MAX_BODY as u64;

/// The first bytes of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Automerge's chunk types.
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED: u8 = 2;
const BUNDLE: u8 = 3;

/// Column specifications the walker reads (id, type), as Automerge 0.12 writes them.
#[cfg(test)]
const ACTION: u32 = Column::spec(4, 2);
const CHANGE_ACTOR: u32 = Column::spec(0, 1);
const CHANGE_SEQ: u32 = Column::spec(0, 3);
/// A document's per-change last operation counter.
const DOC_MAX_OP: u32 = Column::spec(1, 3);
/// A bundle's per-change first and last operation counters.
const BUNDLE_START_OP: u32 = Column::spec(1, 3);
const BUNDLE_MAX_OP: u32 = Column::spec(2, 3);

/// What one payload may cost its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most bytes its deflated pieces may inflate to, together.
    pub inflated: u64,
    /// Most operations, and most items in any one column.
    pub ops: u64,
    /// Longest single string or byte string.
    pub value_len: u64,
}

impl Budget {
    /// The budget for a payload received from someone else.
    pub const UNTRUSTED: Budget = Budget {
        inflated: MAX_INFLATED,
        ops: MAX_OPS,
        value_len: MAX_VALUE_LEN,
    };
}

/// What a payload holds, measured without Automerge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// Automerge chunks in the payload.
    pub chunks: u64,
    /// Bytes its deflated pieces inflate to, together.
    pub inflated_bytes: u64,
    /// Operations: rows of the operation columns (a deletion is a row of a change; in a
    /// saved document it is recorded on the row it deletes, as a successor).
    pub ops: u64,
    /// Changes.
    pub changes: u64,
    /// Length of its longest string or byte string.
    pub largest_value: u64,
}

/// Why a payload was refused before Automerge saw it.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The bytes are not a well-formed payload of the kind named.
    #[error("the payload is not well-formed: {0}")]
    Malformed(&'static str),
    /// Its deflated pieces inflate to more than the budget.
    #[error("the payload inflates to more than {max} bytes")]
    Inflated {
        /// The budget.
        max: u64,
    },
    /// It holds more operations (or a column more items) than the budget.
    #[error("the payload holds more than {max} operations")]
    TooManyOps {
        /// The budget.
        max: u64,
    },
    /// One of its values is longer than the budget.
    #[error("a value of {len} bytes is longer than the {max} allowed")]
    ValueTooLong {
        /// The length found.
        len: u64,
        /// The budget.
        max: u64,
    },
}

/// Measures a payload received from someone else against [`Budget::UNTRUSTED`].
pub fn measure(kind: PayloadKind, data: &[u8]) -> Result<Measure, Refusal> {
    measure_within(kind, data, &Budget::UNTRUSTED)
}

/// Measures a payload of `kind` against `budget`, refusing it as soon as it exceeds it.
///
/// A change payload is one change chunk (plain or compressed), a bundle payload one bundle
/// chunk, both with nothing after them; a document payload any sequence of chunks, as
/// `Automerge::load` reads one. Allocates at most `budget.inflated` bytes for inflation
/// (one piece at a time), plus the column list of one chunk.
pub fn measure_within(kind: PayloadKind, data: &[u8], budget: &Budget) -> Result<Measure, Refusal> {
    let mut walk = Walk {
        budget,
        m: Measure::default(),
    };
    let mut cur = Cursor::new(data);
    while !cur.is_empty() {
        if kind != PayloadKind::Document && walk.m.chunks > 0 {
            return Err(Refusal::Malformed("bytes after the chunk"));
        }
        let (ty, body) = read_chunk(&mut cur)?;
        let fits = match kind {
            PayloadKind::Change => ty == CHANGE || ty == COMPRESSED,
            PayloadKind::Bundle => ty == BUNDLE,
            PayloadKind::Document => true,
        };
        if !fits {
            return Err(Refusal::Malformed("a chunk of another type than the payload's"));
        }
        walk.chunk(ty, body)?;
    }
    if kind != PayloadKind::Document && walk.m.chunks == 0 {
        return Err(Refusal::Malformed("no chunk"));
    }
    Ok(walk.m)
}

/// Reads one chunk header and returns the chunk type and its body.
fn read_chunk<'a>(cur: &mut Cursor<'a>) -> Result<(u8, &'a [u8]), Refusal> {
    if cur.take(4)? != MAGIC {
        return Err(Refusal::Malformed("no Automerge magic bytes"));
    }
    let _checksum = cur.take(4)?;
    let ty = cur.take(1)?[0];
    if ty > BUNDLE {
        return Err(Refusal::Malformed("an unknown chunk type"));
    }
    let len = cur.uleb()?;
    Ok((ty, cur.take(len)?))
}

/// The walk over one payload: its budget and what it found so far.
struct Walk<'b> {
    budget: &'b Budget,
    m: Measure,
}

/// The columns of one section of a chunk (a chunk's changes or its operations), scanned.
struct Section<'d> {
    items: Vec<(u32, u64)>,
    kept: Vec<(u32, Cow<'d, [u8]>)>,
}

impl<'d> Section<'d> {
    /// The most items any column of `specs` describes.
    fn items(&self, specs: &[u32]) -> u64 {
        self.items
            .iter()
            .filter(|(s, _)| specs.contains(s))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    /// Rows of an operation section: the most items of any column that has one item per
    /// operation (all but the predecessor or successor lists, ids 7 and 8, whose group
    /// column says how long each operation's list is).
    fn op_rows(&self) -> u64 {
        self.items
            .iter()
            .filter(|(s, _)| !matches!(s >> 4, 7 | 8) || s & 0b111 == 0)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    /// The values of a kept delta column (empty if the column is absent).
    fn deltas(&self, spec: u32) -> DeltaValues<'_> {
        let data = self.kept.iter().find(|(s, _)| *s == spec).map(|(_, d)| &d[..]);
        DeltaValues::new(data.unwrap_or(&[]))
    }
}

impl Walk<'_> {
    fn chunk(&mut self, ty: u8, body: &[u8]) -> Result<(), Refusal> {
        self.m.chunks += 1;
        match ty {
            DOCUMENT => self.document(body),
            CHANGE => self.change(body),
            COMPRESSED => {
                let inflated = self.inflate(body)?;
                self.change(&inflated)
            }
            _ => self.bundle(body),
        }
    }

    /// Inflates one raw DEFLATE stream, never past what is left of the budget.
    fn inflate(&mut self, deflated: &[u8]) -> Result<Vec<u8>, Refusal> {
        use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_with_limit};
        let left = self.budget.inflated.saturating_sub(self.m.inflated_bytes);
        let cap = usize::try_from(left).unwrap_or(usize::MAX);
        let out = decompress_to_vec_with_limit(deflated, cap).map_err(|e| match e.status {
            TINFLStatus::HasMoreOutput => Refusal::Inflated {
                max: self.budget.inflated,
            },
            _ => Refusal::Malformed("a DEFLATE stream"),
        })?;
        self.m.inflated_bytes += out.len() as u64;
        Ok(out)
    }

    fn note_value(&mut self, len: u64) -> Result<(), Refusal> {
        self.m.largest_value = self.m.largest_value.max(len);
        if len > self.budget.value_len {
            return Err(Refusal::ValueTooLong {
                len,
                max: self.budget.value_len,
            });
        }
        Ok(())
    }

    fn add_counts(&mut self, ops: u64, changes: u64) -> Result<(), Refusal> {
        self.m.ops = self.m.ops.saturating_add(ops);
        self.m.changes = self.m.changes.saturating_add(changes);
        if self.m.ops > self.budget.ops || self.m.changes > self.budget.ops {
            return Err(Refusal::TooManyOps { max: self.budget.ops });
        }
        Ok(())
    }

    /// Scans every column of a section, inflating deflated ones, and keeps the bytes of
    /// the columns in `keep` for a second look.
    fn section<'d>(&mut self, cols: &[Column], data: &'d [u8], keep: &[u32]) -> Result<Section<'d>, Refusal> {
        let mut cur = Cursor::new(data);
        let mut section = Section {
            items: Vec::with_capacity(cols.len()),
            kept: Vec::new(),
        };
        for col in cols {
            let raw = cur.take(col.len)?;
            let bytes = match col.deflated {
                true => Cow::Owned(self.inflate(raw)?),
                false => Cow::Borrowed(raw),
            };
            let stats = columns::scan(col.encoding(), &bytes, self.budget.ops)?;
            if matches!(col.encoding(), Encoding::Str | Encoding::ValueMeta) {
                self.note_value(stats.longest)?;
            }
            section.items.push((col.spec, stats.items));
            if keep.contains(&col.spec) {
                section.kept.push((col.spec, bytes));
            }
        }
        Ok(section)
    }

    /// A change chunk's body (after its header, or inflated from a compressed chunk).
    fn change(&mut self, body: &[u8]) -> Result<(), Refusal> {
        let mut cur = Cursor::new(body);
        let deps = cur.count(32)?;
        cur.take(deps * 32)?;
        cur.prefixed()?; // actor
        cur.uleb()?; // seq
        if cur.uleb()? == 0 {
            return Err(Refusal::Malformed("a change starting at operation 0"));
        }
        cur.sleb()?; // timestamp
        let message = cur.prefixed()?.len() as u64;
        self.note_value(message)?;
        for _ in 0..cur.count(1)? {
            cur.prefixed()?; // other actors
        }
        let (cols, total) = columns::read_columns(&mut cur)?;
        if cols.iter().any(|c| c.deflated) {
            return Err(Refusal::Malformed("a change with deflated columns"));
        }
        let data = cur.take(total)?;
        let extra = cur.rest().len() as u64;
        self.note_value(extra)?;
        let ops = self.section(&cols, data, &[])?;
        self.add_counts(ops.op_rows(), 1)
    }

    /// A document chunk's body.
    fn document(&mut self, body: &[u8]) -> Result<(), Refusal> {
        let mut cur = Cursor::new(body);
        for _ in 0..cur.count(1)? {
            cur.prefixed()?; // actors
        }
        let heads = cur.count(32)?;
        cur.take(heads * 32)?;
        let (change_cols, change_len) = columns::read_columns(&mut cur)?;
        let (op_cols, op_len) = columns::read_columns(&mut cur)?;
        let change_data = cur.take(change_len)?;
        let op_data = cur.take(op_len)?;
        if !cur.is_empty() {
            for _ in 0..heads {
                cur.uleb()?; // head indices
            }
        }
        if !cur.is_empty() {
            return Err(Refusal::Malformed("bytes after the document"));
        }
        let changes = self.section(&change_cols, change_data, &[DOC_MAX_OP])?;
        // No change can end past every operation and deletion the document holds, each
        // of which is a column row: a counter beyond that claims operations that are not
        // there, and would make Automerge reserve room for them.
        let limit = self.budget.ops.saturating_mul(2);
        for max_op in changes.deltas(DOC_MAX_OP) {
            if max_op?.unwrap_or(0) > i64::try_from(limit).unwrap_or(i64::MAX) {
                return Err(Refusal::TooManyOps { max: self.budget.ops });
            }
        }
        let n_changes = changes.items(&[CHANGE_ACTOR, CHANGE_SEQ, DOC_MAX_OP]);
        let ops = self.section(&op_cols, op_data, &[])?;
        self.add_counts(ops.op_rows(), n_changes)
    }

    /// A bundle chunk's body.
    fn bundle(&mut self, body: &[u8]) -> Result<(), Refusal> {
        let mut cur = Cursor::new(body);
        let deps = cur.count(32)?;
        cur.take(deps * 32)?;
        for _ in 0..cur.count(1)? {
            cur.prefixed()?; // actors
        }
        let (change_cols, change_len) = columns::read_columns(&mut cur)?;
        let change_data = cur.take(change_len)?;
        let (op_cols, op_len) = columns::read_columns(&mut cur)?;
        let op_data = cur.take(op_len)?;
        if !cur.is_empty() {
            return Err(Refusal::Malformed("bytes after the bundle"));
        }
        let changes = self.section(&change_cols, change_data, &[BUNDLE_START_OP, BUNDLE_MAX_OP])?;
        let claimed = self.claimed_ops(&changes)?;
        let n_changes = changes.items(&[CHANGE_ACTOR, CHANGE_SEQ, BUNDLE_START_OP, BUNDLE_MAX_OP]);
        let ops = self.section(&op_cols, op_data, &[])?;
        self.add_counts(ops.op_rows().max(claimed), n_changes)
    }

    /// The operations a bundle's changes claim, `max_op - start_op + 1` each: Automerge
    /// makes room for that many per change when it unbundles.
    fn claimed_ops(&self, changes: &Section<'_>) -> Result<u64, Refusal> {
        let mut starts = changes.deltas(BUNDLE_START_OP);
        let mut ends = changes.deltas(BUNDLE_MAX_OP);
        let mut total = 0u64;
        loop {
            let (start, end) = match (starts.next().transpose()?, ends.next().transpose()?) {
                (None, None) => return Ok(total),
                (Some(Some(s)), Some(Some(e))) if s >= 1 && e >= s - 1 => (s, e),
                _ => return Err(Refusal::Malformed("a bundle change's operation range")),
            };
            total = total.saturating_add((end - start + 1).unsigned_abs());
            if total > self.budget.ops {
                return Err(Refusal::TooManyOps { max: self.budget.ops });
            }
        }
    }
}

/// A raw DEFLATE stream (fixed Huffman codes) that inflates to `len` zero bytes, built
/// in time linear in its own size: about 6.5 bytes per KiB it stands for. For tests and
/// the fuzz seeds that build decompression bombs.
#[cfg(any(test, feature = "fuzzing"))]
pub fn deflated_zeros(len: u64) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    let mut left = len;
    if left > 0 {
        bits.code(0x30, 8); // literal 0
        left -= 1;
    }
    while left >= 258 {
        bits.code(0xc5, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    bits.finish()
}

/// Packs bits least significant first, as DEFLATE does.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

#[cfg(any(test, feature = "fuzzing"))]
impl BitWriter {
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= value << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u32, n: u32) {
        for i in (0..n).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}
