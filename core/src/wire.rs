//! A small, bounded binary codec for everything Alongside writes or sends.
//!
//! Every encoding in `docs/FORMAT.md` is built from these primitives: fixed-size byte
//! arrays, little-endian integers, and length-prefixed byte strings whose length is checked
//! against an explicit limit *before* anything is allocated. Decoding never panics: every
//! read returns a [`DecodeError`] when the input is short, too long, or malformed.

use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("the data ends early")]
    Truncated,
    /// A length prefix exceeds the limit for that field.
    #[error("a field is longer than allowed ({len} > {max} bytes)")]
    TooLong {
        /// The length the input claimed.
        len: u64,
        /// The limit for that field.
        max: u64,
    },
    /// Bytes were left over after the value.
    #[error("unexpected bytes after the end of the data")]
    TrailingBytes,
    /// A version byte this build does not understand.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// A tag or flag had a value that no variant uses.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which field held the tag.
        what: &'static str,
        /// The value found.
        tag: u8,
    },
    /// A field was structurally valid but its content is not.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Reads values from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes exactly `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Takes a little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Takes a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Takes a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Takes a little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Takes a byte string with a `u32` length prefix of at most `max` bytes.
    pub fn var_bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong {
                len: len as u64,
                max: max as u64,
            });
        }
        self.bytes(len)
    }

    /// Takes a UTF-8 string with a `u32` length prefix of at most `max` bytes.
    pub fn string(&mut self, max: usize) -> Result<String, DecodeError> {
        let raw = self.var_bytes(max)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Invalid("text"))
    }

    /// Takes a `u16` element count of at most `max` and checks that at least
    /// `min_item_len` bytes per element remain, so a claimed count cannot force a large
    /// allocation.
    pub fn count(&mut self, max: usize, min_item_len: usize) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(DecodeError::TooLong {
                len: n as u64,
                max: max as u64,
            });
        }
        if n.saturating_mul(min_item_len) > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Appends values to a byte vector in the same encoding [`Reader`] reads.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes with no prefix.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a byte string with a `u32` length prefix.
    ///
    /// # Panics
    /// If `b` is longer than `u32::MAX` bytes; callers bound their inputs far below that.
    pub fn var_bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).expect("field shorter than 4 GiB");
        self.u32(len).bytes(b)
    }

    /// Appends an element count as `u16`.
    ///
    /// # Panics
    /// If `n` exceeds `u16::MAX`; callers bound their collections far below that.
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u16(u16::try_from(n).expect("count fits in u16"))
    }

    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let mut w = Writer::new();
        w.u8(7).u16(513).u32(70_000).u64(1 << 40).i64(-5);
        w.var_bytes(b"hello").count(2);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 513);
        assert_eq!(r.u32().unwrap(), 70_000);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(
            r.clone_for_test().var_bytes(4),
            Err(DecodeError::TooLong { len: 5, max: 4 })
        );
        assert_eq!(r.var_bytes(5).unwrap(), b"hello");
        // A count of 2 with nothing behind it cannot be honoured.
        assert_eq!(r.count(10, 1), Err(DecodeError::Truncated));
    }

    impl Reader<'_> {
        fn clone_for_test(&self) -> Self {
            Reader { rest: self.rest }
        }
    }
}
