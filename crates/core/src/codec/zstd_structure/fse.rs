//! Finite State Entropy tables (RFC 8878 §4.1): the normalized-count description, the decoding
//! table, and the encoding table built as libzstd's `FSE_buildCTable` builds it, with its
//! `FSE_initCState2` / `FSE_encodeSymbol` / `FSE_flushCState` state machine.

use super::bits::{BackwardBits, BitWriter, ForwardBits};
use super::StructureError;

/// Normalized counts of a table: one entry per symbol, `-1` for "less than one" probability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedCounts {
    /// Accuracy log: the table has `1 << table_log` states.
    pub table_log: u32,
    /// Count per symbol (symbol = index).
    pub counts: Vec<i16>,
}

/// Reads a table description (libzstd's `FSE_readNCount`); returns the counts and the number
/// of bytes the description takes.
pub fn read_description(
    bytes: &[u8],
    max_symbol: usize,
    max_log: u32,
) -> Result<(NormalizedCounts, usize), StructureError> {
    let mut bits = ForwardBits::new(bytes);
    let table_log = bits.peek(4) + 5;
    bits.skip(4);
    if table_log > max_log {
        return Err(StructureError::new("FSE accuracy log too large"));
    }
    let mut remaining: i32 = (1 << table_log) + 1;
    let mut threshold: i32 = 1 << table_log;
    let mut width = table_log + 1;
    let mut counts: Vec<i16> = Vec::new();
    let mut previous_zero = false;
    while remaining > 1 {
        if previous_zero {
            read_zero_run(&mut bits, &mut counts, max_symbol)?;
        }
        if counts.len() > max_symbol {
            return Err(StructureError::new("FSE description has too many symbols"));
        }
        let max = (2 * threshold - 1) - remaining;
        let low = bits.peek(width - 1) as i32 & (threshold - 1);
        let mut count = if low < max {
            bits.skip(width - 1);
            low
        } else {
            let value = bits.peek(width) as i32 & (2 * threshold - 1);
            bits.skip(width);
            if value >= threshold {
                value - max
            } else {
                value
            }
        };
        count -= 1;
        remaining -= count.abs();
        counts.push(count as i16);
        previous_zero = count == 0;
        while remaining < threshold && threshold > 1 {
            width -= 1;
            threshold >>= 1;
        }
    }
    if remaining != 1 {
        return Err(StructureError::new("FSE description counts do not sum up"));
    }
    let used = bits.bytes_used();
    if used > bytes.len() {
        return Err(StructureError::new("FSE description truncated"));
    }
    Ok((NormalizedCounts { table_log, counts }, used))
}

/// After a zero count: 2-bit repeat flags, each 3 meaning three more zeros and another flag.
fn read_zero_run(
    bits: &mut ForwardBits<'_>,
    counts: &mut Vec<i16>,
    max_symbol: usize,
) -> Result<(), StructureError> {
    loop {
        let flag = bits.peek(2);
        bits.skip(2);
        let zeros = flag as usize;
        if counts.len() + zeros > max_symbol + 1 {
            return Err(StructureError::new("FSE zero run past the last symbol"));
        }
        counts.resize(counts.len() + zeros, 0);
        if flag != 3 {
            return Ok(());
        }
    }
}

/// The symbol at each state: symbols spread over the table with the format's step, "less than
/// one" symbols at the top.
fn spread_symbols(norm: &NormalizedCounts) -> Result<Vec<u8>, StructureError> {
    let size = 1usize << norm.table_log;
    let mask = size - 1;
    let step = (size >> 1) + (size >> 3) + 3;
    let mut table = vec![0u8; size];
    let mut high = size as isize - 1;
    for (symbol, &count) in norm.counts.iter().enumerate() {
        if count == -1 {
            if high < 0 {
                return Err(StructureError::new("FSE table overfull"));
            }
            table[high as usize] = symbol as u8;
            high -= 1;
        }
    }
    let mut position = 0usize;
    for (symbol, &count) in norm.counts.iter().enumerate() {
        for _ in 0..count.max(0) {
            table[position] = symbol as u8;
            position = (position + step) & mask;
            while position as isize > high {
                position = (position + step) & mask;
            }
        }
    }
    if position != 0 {
        return Err(StructureError::new("FSE counts do not fill the table"));
    }
    Ok(table)
}

/// Decoding entry: the symbol, how many bits the next state reads and its baseline.
#[derive(Clone, Copy, Debug)]
struct DecodeEntry {
    symbol: u8,
    bits: u8,
    baseline: u16,
}

/// A decoding table.
#[derive(Clone, Debug)]
pub struct DecodeTable {
    table_log: u32,
    entries: Vec<DecodeEntry>,
}

/// A decoder's state in a [`DecodeTable`].
pub struct DecodeState(usize);

impl DecodeTable {
    /// Builds the decoding table of `norm` (RFC 8878 §4.1.1).
    pub fn new(norm: &NormalizedCounts) -> Result<Self, StructureError> {
        let symbols = spread_symbols(norm)?;
        let size = symbols.len();
        let mut next: Vec<u32> = norm
            .counts
            .iter()
            .map(|&count| if count == -1 { 1 } else { count.max(0) as u32 })
            .collect();
        let entries = symbols
            .iter()
            .map(|&symbol| {
                let state = next[symbol as usize];
                next[symbol as usize] += 1;
                let bits = norm.table_log - (31 - state.leading_zeros());
                DecodeEntry {
                    symbol,
                    bits: bits as u8,
                    baseline: ((state << bits) as usize - size) as u16,
                }
            })
            .collect();
        Ok(Self {
            table_log: norm.table_log,
            entries,
        })
    }

    /// A table of one symbol and no bits (the RLE mode).
    pub fn rle(symbol: u8) -> Self {
        Self {
            table_log: 0,
            entries: vec![DecodeEntry {
                symbol,
                bits: 0,
                baseline: 0,
            }],
        }
    }

    /// Reads the initial state.
    pub fn init(&self, bits: &mut BackwardBits<'_>) -> DecodeState {
        DecodeState(bits.read(self.table_log) as usize)
    }

    /// The symbol of `state`.
    pub fn symbol(&self, state: &DecodeState) -> u8 {
        self.entries[state.0].symbol
    }

    /// Moves `state` to the next state, reading its bits.
    pub fn update(&self, state: &mut DecodeState, bits: &mut BackwardBits<'_>) {
        let entry = self.entries[state.0];
        state.0 = entry.baseline as usize + bits.read(u32::from(entry.bits)) as usize;
    }
}

/// Encoding transform of one symbol (libzstd's `FSE_symbolCompressionTransform`).
#[derive(Clone, Copy, Debug, Default)]
struct SymbolTransform {
    delta_bits: i64,
    delta_find_state: i64,
    present: bool,
}

/// An encoding table as libzstd builds it, or the single-symbol table of the RLE mode.
#[derive(Clone, Debug)]
pub struct EncodeTable {
    table_log: u32,
    states: Vec<u16>,
    symbols: Vec<SymbolTransform>,
}

impl EncodeTable {
    /// Builds the encoding table of `norm` (libzstd's `FSE_buildCTable`).
    pub fn new(norm: &NormalizedCounts) -> Result<Self, StructureError> {
        let spread = spread_symbols(norm)?;
        let size = spread.len();
        let mut cumulative = Vec::with_capacity(norm.counts.len() + 1);
        cumulative.push(0usize);
        for &count in &norm.counts {
            let occupied = if count == -1 {
                1
            } else {
                count.max(0) as usize
            };
            cumulative.push(cumulative.last().copied().unwrap_or(0) + occupied);
        }
        let mut states = vec![0u16; size];
        for (position, &symbol) in spread.iter().enumerate() {
            let slot = &mut cumulative[symbol as usize];
            states[*slot] = (size + position) as u16;
            *slot += 1;
        }
        let log = i64::from(norm.table_log);
        let mut total: i64 = 0;
        let symbols = norm
            .counts
            .iter()
            .map(|&count| symbol_transform(i64::from(count), log, &mut total))
            .collect();
        Ok(Self {
            table_log: norm.table_log,
            states,
            symbols,
        })
    }

    /// The single-symbol table of the RLE mode (no bits at all).
    pub fn rle() -> Self {
        Self {
            table_log: 0,
            states: Vec::new(),
            symbols: Vec::new(),
        }
    }

    fn transform(&self, symbol: u8) -> Result<SymbolTransform, StructureError> {
        match self.symbols.get(symbol as usize) {
            Some(transform) if transform.present => Ok(*transform),
            _ => Err(StructureError::new("symbol absent from its FSE table")),
        }
    }

    /// The first state, for the last symbol of the stream (libzstd's `FSE_initCState2`).
    pub fn init(&self, symbol: u8) -> Result<u32, StructureError> {
        if self.table_log == 0 {
            return Ok(0);
        }
        let transform = self.transform(symbol)?;
        let bits_out = (transform.delta_bits + (1 << 15)) >> 16;
        let value = (bits_out << 16) - transform.delta_bits;
        self.state_at((value >> bits_out) + transform.delta_find_state)
    }

    fn state_at(&self, index: i64) -> Result<u32, StructureError> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.states.get(index))
            .map(|&state| u32::from(state))
            .ok_or(StructureError::new("FSE state out of table"))
    }

    /// Writes the bits that move from `state` to a state of `symbol` (`FSE_encodeSymbol`).
    pub fn encode(
        &self,
        state: &mut u32,
        symbol: u8,
        out: &mut BitWriter,
    ) -> Result<(), StructureError> {
        if self.table_log == 0 {
            return Ok(());
        }
        let transform = self.transform(symbol)?;
        let bits_out = (i64::from(*state) + transform.delta_bits) >> 16;
        out.add(u64::from(*state), bits_out as u32);
        *state = self.state_at((i64::from(*state) >> bits_out) + transform.delta_find_state)?;
        Ok(())
    }

    /// Writes the final state (`FSE_flushCState`).
    pub fn flush(&self, state: u32, out: &mut BitWriter) {
        out.add(u64::from(state), self.table_log);
    }
}

fn symbol_transform(count: i64, log: i64, total: &mut i64) -> SymbolTransform {
    match count {
        0 => SymbolTransform::default(),
        -1 | 1 => {
            let transform = SymbolTransform {
                delta_bits: (log << 16) - (1 << log),
                delta_find_state: *total - 1,
                present: true,
            };
            *total += 1;
            transform
        }
        _ => {
            let max_bits_out = log - (63 - i64::from(((count - 1) as u64).leading_zeros()));
            let min_state_plus = count << max_bits_out;
            let transform = SymbolTransform {
                delta_bits: (max_bits_out << 16) - min_state_plus,
                delta_find_state: *total - count,
                present: true,
            };
            *total += count;
            transform
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(table_log: u32, counts: &[i16]) -> NormalizedCounts {
        NormalizedCounts {
            table_log,
            counts: counts.to_vec(),
        }
    }

    #[test]
    fn encoded_symbols_decode_back() {
        let norm = counts(6, &[20, 1, -1, 0, 30, 10, -1, 1]);
        let encoder = EncodeTable::new(&norm).unwrap();
        let decoder = DecodeTable::new(&norm).unwrap();
        let message = [4u8, 0, 0, 7, 2, 4, 4, 5, 6, 1, 0, 4, 5, 5];
        let mut out = BitWriter::new();
        let mut state = encoder.init(message[message.len() - 1]).unwrap();
        for &symbol in message[..message.len() - 1].iter().rev() {
            encoder.encode(&mut state, symbol, &mut out).unwrap();
        }
        encoder.flush(state, &mut out);
        let stream = out.close();
        let mut bits = BackwardBits::new(&stream).unwrap();
        let mut state = decoder.init(&mut bits);
        for (index, &symbol) in message.iter().enumerate() {
            assert_eq!(decoder.symbol(&state), symbol);
            if index + 1 < message.len() {
                decoder.update(&mut state, &mut bits);
            }
        }
        assert!(bits.finished_exactly());
        assert!(encoder.init(3).is_err());
    }

    #[test]
    fn counts_that_do_not_fill_the_table_are_refused() {
        assert!(DecodeTable::new(&counts(5, &[10, 10])).is_err());
    }

    #[test]
    fn a_description_reads_its_counts() {
        // Accuracy log 5; symbol 0 at 31/32 (written as 62 in 6 bits), symbol 1 at 1/32 (3 in
        // 2 bits): 12 bits in 2 bytes.
        let (norm, used) = read_description(&[0xE0, 0x0F, 0xFF], 10, 9).unwrap();
        assert_eq!(norm, counts(5, &[31, 1]));
        assert_eq!(used, 2);
        assert!(read_description(&[0xE0, 0x0F], 10, 4).is_err());
    }
}
