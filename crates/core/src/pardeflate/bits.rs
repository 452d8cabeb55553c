//! LSB-first bit writer with deflate's byte-alignment rules, and bit-level concatenation of
//! independently written pieces.

/// An LSB-first bit writer.
///
/// Bits are packed the way zlib's `send_bits` packs them (first bit in the least significant
/// position of the first byte); [`BitWriter::align`] pads with zero bits like `bi_windup`.
#[derive(Default, Debug, Clone)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    /// A writer whose byte buffer starts with room for `cap` bytes.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(cap),
            acc: 0,
            nbits: 0,
        }
    }

    /// Append the low `len` bits of `value` (`len` ≤ 32, `value` < 2^len).
    #[inline(always)]
    pub(crate) fn send(&mut self, value: u32, len: u32) {
        debug_assert!(len <= 32);
        debug_assert!(len == 32 || u64::from(value) < (1u64 << len));
        self.acc |= u64::from(value) << self.nbits;
        self.nbits += len;
        if self.nbits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.nbits -= 32;
        }
    }

    /// Pad with zero bits to the next byte boundary (zlib's `bi_windup`).
    pub(crate) fn align(&mut self) {
        while self.nbits > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.acc = 0;
    }

    /// Append whole bytes; the writer must be byte aligned.
    pub(crate) fn put_bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.nbits, 0);
        self.out.extend_from_slice(bytes);
    }

    /// Number of complete bytes buffered.
    pub(crate) fn byte_len(&self) -> usize {
        self.out.len()
    }

    /// Take the complete bytes buffered so far (the pending bits stay).
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Total number of bits written so far.
    pub(crate) fn bit_len(&self) -> u64 {
        self.out.len() as u64 * 8 + u64::from(self.nbits)
    }

    /// Finish into a [`BitBuf`] (partial last byte zero padded, bit length recorded).
    pub(crate) fn into_bitbuf(mut self) -> BitBuf {
        let nbits = self.bit_len();
        self.align();
        BitBuf {
            bytes: self.out,
            nbits,
        }
    }

    /// Append `buf` at the current bit position.
    pub(crate) fn append(&mut self, buf: &BitBuf) {
        let full = (buf.nbits / 8) as usize;
        let rest = (buf.nbits % 8) as u32;
        if self.nbits == 0 {
            self.out.extend_from_slice(&buf.bytes[..full]);
        } else {
            let mut chunks = buf.bytes[..full].chunks_exact(4);
            for c in &mut chunks {
                self.send(u32::from_le_bytes([c[0], c[1], c[2], c[3]]), 32);
            }
            for &b in chunks.remainder() {
                self.send(u32::from(b), 8);
            }
        }
        if rest != 0 {
            self.send(u32::from(buf.bytes[full]) & ((1 << rest) - 1), rest);
        }
    }

    /// Finish: pad the last byte and return the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.align();
        self.out
    }
}

/// A finished piece of bit stream: `nbits` bits stored LSB first in `bytes`.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitBuf {
    pub(crate) bytes: Vec<u8>,
    pub(crate) nbits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_at_every_offset_equals_direct_writing() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for pre in 0..16u32 {
            let pieces: Vec<(u32, u32)> = (0..200)
                .map(|_| {
                    let len = (next() % 16 + 1) as u32;
                    ((next() as u32) & ((1 << len) - 1), len)
                })
                .collect();
            let mut direct = BitWriter::default();
            direct.send(0x5a5a & ((1 << pre) - 1), pre);
            let mut piece = BitWriter::default();
            for &(v, l) in &pieces {
                direct.send(v, l);
                piece.send(v, l);
            }
            let mut joined = BitWriter::default();
            joined.send(0x5a5a & ((1 << pre) - 1), pre);
            joined.append(&piece.into_bitbuf());
            assert_eq!(direct.bit_len(), joined.bit_len());
            assert_eq!(direct.finish(), joined.finish());
        }
    }
}
