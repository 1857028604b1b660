//! The pieces of Automerge's encoding the budget walker reads: LEB128 numbers, column
//! specifications, and the run-length encodings of columns, scanned without expanding a
//! single run.
//!
//! Run-length columns (`Group`, `Actor`, `Integer`, `ValueMetadata`, `String`, and
//! `DeltaInteger` over deltas) are a sequence of runs: a signed LEB128 count `n`, then for
//! `n > 0` one value repeated `n` times, for `n < 0` a literal run of `-n` values, for
//! `n == 0` an unsigned LEB128 count of nulls. `Boolean` columns are alternating unsigned
//! counts of `false` and `true`. `Value` columns are raw bytes that the value metadata
//! column (`len << 4 | type` per value) cuts up.

use super::Refusal;

/// Reads LEB128 numbers and length-checked slices, never past the end.
#[derive(Debug, Clone)]
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { rest: bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes `n` bytes, refusing a length that points past the end.
    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], Refusal> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or(Refusal::Malformed("a length points past the end"))?;
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes everything left.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// An unsigned LEB128 number of at most ten bytes that fits a `u64`.
    pub(super) fn uleb(&mut self) -> Result<u64, Refusal> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return Err(Refusal::Malformed("a leb128 number overflows"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refusal::Malformed("a leb128 number overflows"))
    }

    /// A signed LEB128 number of at most ten bytes.
    pub(super) fn sleb(&mut self) -> Result<i64, Refusal> {
        let mut value = 0i64;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            value |= i64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let shift = 7 * (i + 1);
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
        Err(Refusal::Malformed("a leb128 number overflows"))
    }

    /// Skips one LEB128 number of at most ten bytes, whatever its value.
    pub(super) fn skip_leb(&mut self) -> Result<(), Refusal> {
        for _ in 0..10 {
            if self.take(1)?[0] & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(Refusal::Malformed("a leb128 number overflows"))
    }

    /// A byte string with an unsigned LEB128 length prefix.
    pub(super) fn prefixed(&mut self) -> Result<&'a [u8], Refusal> {
        let len = self.uleb()?;
        self.take(len)
    }

    /// A count of items that each take at least `min_len` bytes, checked against what is
    /// left so that a claimed count cannot make a loop or an allocation large.
    pub(super) fn count(&mut self, min_len: u64) -> Result<u64, Refusal> {
        let n = self.uleb()?;
        if n.saturating_mul(min_len) > self.rest.len() as u64 {
            return Err(Refusal::Malformed("a count claims more items than there are bytes"));
        }
        Ok(n)
    }
}

/// The encoding of a column, from the low three bits of its specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// Run-length encoded unsigned numbers (group, actor, integer columns).
    Unsigned,
    /// Run-length encoded deltas.
    Delta,
    /// Alternating run counts of `false` and `true`.
    Boolean,
    /// Run-length encoded strings.
    Str,
    /// Run-length encoded `len << 4 | type` of each value.
    ValueMeta,
    /// Raw value bytes.
    Raw,
}

/// One column as its chunk describes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    /// The specification with the deflate bit cleared.
    pub(super) spec: u32,
    pub(super) deflated: bool,
    pub(super) len: u64,
}

/// The bit of a column specification that marks its data as DEFLATE-compressed.
const DEFLATE_BIT: u32 = 0b1000;

impl Column {
    /// The specification Automerge writes for column `id` of type `ty`, deflate bit clear.
    pub(super) const fn spec(id: u32, ty: u32) -> u32 {
        (id << 4) | ty
    }

    pub(super) fn encoding(&self) -> Encoding {
        match self.spec & 0b111 {
            0..=2 => Encoding::Unsigned,
            3 => Encoding::Delta,
            4 => Encoding::Boolean,
            5 => Encoding::Str,
            6 => Encoding::ValueMeta,
            _ => Encoding::Raw,
        }
    }
}

/// Most columns one section of a chunk may list. Automerge 0.12 writes at most 17 (a
/// bundle's operations); the rest of the room is for columns a later version may add.
const MAX_COLUMNS: u64 = 64;

/// Reads a column list: a count, then per column its specification and data length.
pub(super) fn read_columns(cur: &mut Cursor<'_>) -> Result<(Vec<Column>, u64), Refusal> {
    let n = cur.count(2)?;
    if n > MAX_COLUMNS {
        return Err(Refusal::Malformed("more columns than any Automerge writes"));
    }
    let mut columns = Vec::with_capacity(n as usize);
    let mut total = 0u64;
    for _ in 0..n {
        let raw = u32::try_from(cur.uleb()?).map_err(|_| Refusal::Malformed("a column specification"))?;
        let len = cur.uleb()?;
        total = total.saturating_add(len);
        columns.push(Column {
            spec: raw & !DEFLATE_BIT,
            deflated: raw & DEFLATE_BIT != 0,
            len,
        });
    }
    Ok((columns, total))
}

/// What scanning one column found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ColumnStats {
    /// How many items (rows) the column describes; `0` for raw value bytes.
    pub(super) items: u64,
    /// The longest string (a string column) or value (a value metadata column).
    pub(super) longest: u64,
}

/// Counts the items of a column by its run headers, refusing as soon as the count passes
/// `max_items`. Each run costs at least one byte, so the scan is linear in the data.
pub(super) fn scan(encoding: Encoding, data: &[u8], max_items: u64) -> Result<ColumnStats, Refusal> {
    let mut cur = Cursor::new(data);
    let mut stats = ColumnStats::default();
    while !cur.is_empty() {
        let items = match encoding {
            Encoding::Raw => return Ok(stats),
            Encoding::Boolean => cur.uleb()?,
            _ => scan_run(encoding, &mut cur, &mut stats.longest)?,
        };
        stats.items = stats.items.saturating_add(items);
        if stats.items > max_items {
            return Err(Refusal::TooManyOps { max: max_items });
        }
    }
    Ok(stats)
}

/// Reads one run of a run-length column; returns how many items it stands for.
fn scan_run(encoding: Encoding, cur: &mut Cursor<'_>, longest: &mut u64) -> Result<u64, Refusal> {
    let count = cur.sleb()?;
    if count == 0 {
        return cur.uleb();
    }
    let values = if count > 0 { 1 } else { count.unsigned_abs() };
    if values > cur.remaining() as u64 {
        return Err(Refusal::Malformed("a literal run is longer than its column"));
    }
    for _ in 0..values {
        let len = match encoding {
            Encoding::Str => cur.prefixed()?.len() as u64,
            Encoding::ValueMeta => cur.uleb()? >> 4,
            _ => {
                cur.skip_leb()?;
                0
            }
        };
        *longest = (*longest).max(len);
    }
    Ok(count.unsigned_abs())
}

/// The absolute values of a delta column, item by item (`None` for a null). Only run on a
/// column whose item count was already checked, so expanding its runs is bounded.
#[derive(Debug)]
pub(super) struct DeltaValues<'a> {
    cur: Cursor<'a>,
    left: u64,
    step: Step,
    value: i64,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Repeat(i64),
    Literal,
    Null,
}

impl<'a> DeltaValues<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        DeltaValues {
            cur: Cursor::new(data),
            left: 0,
            step: Step::Null,
            value: 0,
        }
    }

    fn next_run(&mut self) -> Result<(), Refusal> {
        let count = self.cur.sleb()?;
        (self.left, self.step) = match count {
            0 => (self.cur.uleb()?, Step::Null),
            c if c > 0 => (c.unsigned_abs(), Step::Repeat(self.cur.sleb()?)),
            c => (c.unsigned_abs(), Step::Literal),
        };
        Ok(())
    }
}

impl Iterator for DeltaValues<'_> {
    type Item = Result<Option<i64>, Refusal>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.left == 0 {
            if self.cur.is_empty() {
                return None;
            }
            if let Err(e) = self.next_run() {
                return Some(Err(e));
            }
        }
        self.left -= 1;
        let delta = match self.step {
            Step::Null => return Some(Ok(None)),
            Step::Repeat(d) => d,
            Step::Literal => match self.cur.sleb() {
                Ok(d) => d,
                Err(e) => return Some(Err(e)),
            },
        };
        self.value = self.value.wrapping_add(delta);
        Some(Ok(Some(self.value)))
    }
}
