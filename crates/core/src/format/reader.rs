//! Bounds-checked, endian-aware cursor over delta bytes.

use crate::error::{code, Error, Result};
use crate::format::model::{Item, HASH_ALG_MD5, HASH_ALG_SHA256};
use crate::io::SharedBytes;

/// The four bytes every PAMZ delta, and every archive nested in one, starts with.
pub const MAGIC: &[u8; 4] = b"PAMZ";

/// Upstream's check of the first four bytes: 30000 with the bytes found unless they are [`MAGIC`].
pub fn check_magic(found: &[u8]) -> Result<()> {
    if found == MAGIC {
        return Ok(());
    }
    Err(Error::new(
        code::DIFF_MAGIC_HEADER_WRONG,
        format!(
            "Not a valid diff file - invalid magic. Found: {}",
            String::from_utf8_lossy(found)
        ),
    ))
}

/// Byte order of a delta's integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Network order (standard format, legacy as 3.0.0 reads it).
    Big,
    /// Host order of the 1.x tools.
    Little,
}

/// A cursor over the delta. Every read checks the remaining length first and reports upstream's
/// `io_reader_read_failure` (20000) on truncation; no read allocates more than what is present.
pub struct Cursor {
    data: SharedBytes,
    pos: usize,
    /// Byte order used by the integer readers.
    pub endian: Endian,
}

impl Cursor {
    /// A cursor at offset 0 of `data`.
    pub fn new(data: SharedBytes, endian: Endian) -> Self {
        Cursor {
            data,
            pos: 0,
            endian,
        }
    }

    /// Reads the four magic bytes ([`check_magic`]).
    pub fn magic(&mut self) -> Result<()> {
        check_magic(self.bytes(4)?)
    }

    /// Current offset.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes left after the current offset.
    pub fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    /// The whole underlying data.
    pub fn data(&self) -> &SharedBytes {
        &self.data
    }

    /// Takes `n` bytes as a slice, or fails with 20000.
    pub fn bytes(&mut self, n: u64) -> Result<&[u8]> {
        if n > self.remaining() {
            return Err(Error::short_read(n, self.remaining()));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    /// Takes `n` bytes as a shared view (no copy). A blob running past the end is upstream's
    /// `io_device_new_end_past_size` (21200).
    pub fn blob(&mut self, n: u64) -> Result<SharedBytes> {
        let view = self
            .data
            .slice(self.pos as u64, n)
            .ok_or_else(|| Error::past_end(self.pos as u64, n, self.data.len() as u64))?;
        self.pos += n as usize;
        Ok(view)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a u32 in the cursor's byte order.
    pub fn u32(&mut self) -> Result<u32> {
        let endian = self.endian;
        let b: [u8; 4] = self.bytes(4)?.try_into().expect("length checked");
        Ok(match endian {
            Endian::Big => u32::from_be_bytes(b),
            Endian::Little => u32::from_le_bytes(b),
        })
    }

    /// Reads a u64 in the cursor's byte order.
    pub fn u64(&mut self) -> Result<u64> {
        let endian = self.endian;
        let b: [u8; 8] = self.bytes(8)?.try_into().expect("length checked");
        Ok(match endian {
            Endian::Big => u64::from_be_bytes(b),
            Endian::Little => u64::from_le_bytes(b),
        })
    }

    /// Reads a hash (`u32` algorithm id + digest) into `item`. Unknown ids → 30003.
    pub fn hash_into(&mut self, item: &mut Item) -> Result<()> {
        let alg = self.u32()?;
        match alg {
            HASH_ALG_SHA256 => {
                item.sha256 = Some(self.bytes(32)?.try_into().expect("length checked"));
            }
            HASH_ALG_MD5 => {
                item.md5 = Some(self.bytes(16)?.try_into().expect("length checked"));
            }
            other => {
                return Err(Error::new(
                    code::DIFF_BAD_HASH_TYPE,
                    format!(
                        "diffs::hash::get_byte_count_for_algorithm(): Unexpected hash type: {other}"
                    ),
                ))
            }
        }
        Ok(())
    }
}
