//! Bit streams of the zstd format: the forward little-endian reader of table descriptions, the
//! backward reader of Huffman and FSE bitstreams, and the writer that makes those bitstreams
//! exactly as libzstd's `BIT_CStream` does (bits appended least significant first, closed by a
//! single 1 bit and zero padding to a byte).

use super::StructureError;

/// Reads bits forward from a byte slice, least significant bit first (FSE table descriptions).
/// Bits past the end read as zero; [`ForwardBits::bytes_used`] tells how far the reader went.
pub struct ForwardBits<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ForwardBits<'a> {
    /// A reader at the first bit of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// The next `count` (≤ 32) bits without consuming them.
    pub fn peek(&self, count: u32) -> u32 {
        let mut value = 0u64;
        let first = self.position / 8;
        for index in 0..5 {
            let byte = self.bytes.get(first + index).copied().unwrap_or(0);
            value |= u64::from(byte) << (8 * index);
        }
        let value = value >> (self.position % 8);
        (value & ((1u64 << count) - 1)) as u32
    }

    /// Consumes `count` bits.
    pub fn skip(&mut self, count: u32) {
        self.position += count as usize;
    }

    /// Whole bytes touched so far (the description's length).
    pub fn bytes_used(&self) -> usize {
        self.position.div_ceil(8)
    }
}

/// Reads a zstd bitstream backward: from the last byte's highest set bit (the end mark) toward
/// the first byte. Reading past the start yields zeros and is recorded as an overflow.
pub struct BackwardBits<'a> {
    bytes: &'a [u8],
    /// Bits not yet read, counted from the stream's first bit.
    remaining: usize,
    overflow: bool,
}

impl<'a> BackwardBits<'a> {
    /// A reader positioned below the end mark. Fails on an empty stream or a last byte of zero.
    pub fn new(bytes: &'a [u8]) -> Result<Self, StructureError> {
        let last = *bytes.last().ok_or(StructureError::new("empty bitstream"))?;
        if last == 0 {
            return Err(StructureError::new("bitstream without end mark"));
        }
        let mark = 7 - last.leading_zeros() as usize;
        Ok(Self {
            bytes,
            remaining: (bytes.len() - 1) * 8 + mark,
            overflow: false,
        })
    }

    /// The next `count` (≤ 56) bits as a number whose high bits are the first read, without
    /// consuming them; bits before the stream's start read as zero.
    pub fn peek(&self, count: u32) -> u64 {
        let count = count as usize;
        if count == 0 {
            return 0;
        }
        if self.remaining >= count {
            self.window(self.remaining - count, count)
        } else {
            self.window(0, self.remaining) << (count - self.remaining)
        }
    }

    /// `count` bits starting at bit `start` (LSB first order).
    fn window(&self, start: usize, count: usize) -> u64 {
        if count == 0 {
            return 0;
        }
        let first = start / 8;
        let mut value = 0u64;
        for index in 0..8 {
            let byte = self.bytes.get(first + index).copied().unwrap_or(0);
            value |= u64::from(byte) << (8 * index);
        }
        (value >> (start % 8)) & ((1u64 << count) - 1)
    }

    /// Consumes `count` bits; consuming more than remain sets the overflow flag.
    pub fn skip(&mut self, count: u32) {
        let count = count as usize;
        if count > self.remaining {
            self.overflow = true;
            self.remaining = 0;
        } else {
            self.remaining -= count;
        }
    }

    /// Reads and consumes `count` (≤ 56) bits.
    pub fn read(&mut self, count: u32) -> u64 {
        let value = self.peek(count);
        self.skip(count);
        value
    }

    /// Whether more bits were consumed than the stream holds.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Whether every bit was consumed exactly.
    pub fn finished_exactly(&self) -> bool {
        self.remaining == 0 && !self.overflow
    }
}

/// Writes a bitstream as libzstd's `BIT_CStream`: values appended least significant bit first.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    accumulator: u64,
    pending: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the low `count` (≤ 32) bits of `value`.
    pub fn add(&mut self, value: u64, count: u32) {
        if count == 0 {
            return;
        }
        let masked = value & ((1u64 << count) - 1);
        self.accumulator |= masked << self.pending;
        self.pending += count;
        while self.pending >= 8 {
            self.bytes.push(self.accumulator as u8);
            self.accumulator >>= 8;
            self.pending -= 8;
        }
    }

    /// Appends the end mark (one 1 bit), pads to a byte and returns the stream.
    pub fn close(mut self) -> Vec<u8> {
        self.add(1, 1);
        if self.pending > 0 {
            self.bytes.push(self.accumulator as u8);
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_bits_read_back_in_reverse_order() {
        let mut writer = BitWriter::new();
        let values = [(5u64, 3u32), (0, 1), (0x1ABCD, 17), (1, 1), (0x7F, 7)];
        for (value, count) in values {
            writer.add(value, count);
        }
        let stream = writer.close();
        let mut reader = BackwardBits::new(&stream).unwrap();
        for (value, count) in values.iter().rev() {
            assert_eq!(reader.read(*count), *value);
        }
        assert!(reader.finished_exactly());
        reader.skip(1);
        assert!(reader.overflowed());
    }

    #[test]
    fn forward_reader_is_little_endian_and_zero_padded() {
        let mut reader = ForwardBits::new(&[0b1010_0110, 0xFF]);
        assert_eq!(reader.peek(4), 0b0110);
        reader.skip(4);
        assert_eq!(reader.peek(8), 0xFA);
        reader.skip(12);
        assert_eq!(reader.peek(8), 0);
        assert_eq!(reader.bytes_used(), 2);
    }

    #[test]
    fn a_stream_without_end_mark_is_refused() {
        assert!(BackwardBits::new(&[]).is_err());
        assert!(BackwardBits::new(&[1, 0]).is_err());
    }
}
