//! The `dfast` match finder (libzstd's level 3 and 4 strategy) as libzstd 1.5.4/1.5.5 run it
//! on contiguous input ("no dictionary" mode): two hash tables holding the latest position per
//! hash of 8 bytes (long) and of `min_match` bytes (short), probed at positions that step
//! further apart the longer no match is found.
//!
//! Positions are libzstd's window indices: the first byte of a job's window (its overlap prefix,
//! or its content when it has none) has index [`WINDOW_START_INDEX`]. Every read is bounds
//! checked; a read outside the window counts as "no match" and never panics.

use super::super::zstd_structure::Sequence;
use super::{DfastParams, DfastVersion};

/// Index of a window's first byte (libzstd's `ZSTD_WINDOW_START_INDEX`; 1 before 1.5).
pub const WINDOW_START_INDEX: u32 = 2;
/// Index of a window's first byte in libzstd 1.4.
const WINDOW_START_INDEX_1_4: u32 = 1;
/// Bytes every hash reads (`HASH_READ_SIZE`).
const HASH_READ_SIZE: u32 = 8;
/// log2 of the positions searched before the step grows (`kSearchStrength`).
const SEARCH_STRENGTH: u32 = 8;
/// Multiplier of the 5-byte hash (`prime5bytes`).
const PRIME_5_BYTES: u64 = 889_523_592_379;
/// Multiplier of the 8-byte hash (`prime8bytes`).
const PRIME_8_BYTES: u64 = 0xCF1B_BCDC_B7A5_6463;
/// Multiplier of the 4-byte hash (`prime4bytes`).
const PRIME_4_BYTES: u32 = 2_654_435_761;
/// Multiplier of the 6-byte hash (`prime6bytes`).
const PRIME_6_BYTES: u64 = 227_718_039_650_203;
/// Multiplier of the 7-byte hash (`prime7bytes`).
const PRIME_7_BYTES: u64 = 58_295_818_150_454_627;

/// The match state of one job: its window and both hash tables.
pub struct MatchState<'w> {
    /// The job's window: the overlap prefix followed by the job's content.
    window: &'w [u8],
    params: DfastParams,
    /// Whether the candidates follow libzstd 1.5.7's rules (a candidate at the lowest valid
    /// index counts; the next position's long match only when longer than the short match).
    newer: bool,
    /// libzstd 1.4's search loop instead of 1.5's.
    older: bool,
    /// Index of the window's first byte.
    start: u32,
    /// Latest index per hash of 8 bytes (`hashTable`, 2^hash_log entries).
    long: Vec<u32>,
    /// Latest index per hash of `min_match` bytes (`chainTable`, 2^chain_log entries).
    short: Vec<u32>,
    /// Start of the prefix, the contiguous segment the current block is in (`window.dictLimit`).
    dict_limit: u32,
    /// Lowest index of the window, below `dict_limit` while an older segment (an "external
    /// dictionary") is still in reach (`window.lowLimit`).
    low_limit: u32,
    /// While in external-dictionary mode, reads of the older segment may not run past its end:
    /// libzstd reads unrelated memory there, which this port treats as no match.
    segment_end: Option<u32>,
}

/// Where a search step found its match.
struct Found {
    /// Index where the match (and the sequence's literals' end) starts.
    start: u32,
    /// Distance to the referenced bytes.
    offset: u32,
    /// Match length.
    length: u32,
}

impl<'w> MatchState<'w> {
    /// A fresh state (zeroed tables) over `window`, whose first byte has index
    /// [`WINDOW_START_INDEX`]. `tables` are reused allocations (cleared and resized here).
    pub fn new(
        window: &'w [u8],
        params: DfastParams,
        version: DfastVersion,
        tables: (Vec<u32>, Vec<u32>),
    ) -> Self {
        let (mut long, mut short) = tables;
        long.clear();
        long.resize(1 << params.hash_log, 0);
        short.clear();
        short.resize(1 << params.chain_log, 0);
        let older = version == DfastVersion::Libzstd148;
        let start = if older {
            WINDOW_START_INDEX_1_4
        } else {
            WINDOW_START_INDEX
        };
        MatchState {
            window,
            params,
            newer: version == DfastVersion::Libzstd157,
            older,
            start,
            long,
            short,
            dict_limit: start,
            low_limit: start,
            segment_end: None,
        }
    }

    /// Index of the window's first byte.
    pub fn start_index(&self) -> u32 {
        self.start
    }

    /// Gives the tables back for reuse.
    pub fn into_tables(self) -> (Vec<u32>, Vec<u32>) {
        (self.long, self.short)
    }

    /// Indexes the first `prefix_length` bytes of the window as raw dictionary content, the
    /// way a multithreaded job loads its overlap (`ZSTD_fillDoubleHashTable`, fast load for a
    /// compression context): every third position into both tables.
    pub fn load_prefix(&mut self, prefix_length: u32) {
        if prefix_length <= HASH_READ_SIZE {
            return;
        }
        let last = self.start + prefix_length - HASH_READ_SIZE;
        let mut index = self.start;
        while index + 2 <= last {
            if let (Some(short_hash), Some(long_hash)) =
                (self.short_hash(index), self.long_hash(index))
            {
                self.short[short_hash] = index;
                self.long[long_hash] = index;
            }
            index += 3;
        }
    }

    /// Raises the lowest valid index before the block starting at `block_start`
    /// (`ZSTD_window_enforceMaxDist` with the window size as maximum distance).
    pub fn enforce_max_distance(&mut self, block_start: u32) {
        let max_distance = 1u32 << self.params.window_log;
        if block_start > max_distance {
            self.low_limit = self.low_limit.max(block_start - max_distance);
            self.dict_limit = self.dict_limit.max(self.low_limit);
        }
    }

    /// Sets the window limits (`lowLimit`, `dictLimit`) as a streaming producer's window
    /// bookkeeping left them before a block.
    pub fn set_limits(&mut self, low_limit: u32, dict_limit: u32) {
        self.low_limit = low_limit;
        self.dict_limit = dict_limit;
    }

    /// The window limits (`lowLimit`, `dictLimit`).
    pub fn limits(&self) -> (u32, u32) {
        (self.low_limit, self.dict_limit)
    }

    /// `ZSTD_getLowestMatchIndex` without a loaded dictionary.
    fn lowest_match_index(&self, current: u32) -> u32 {
        let max_distance = 1u32 << self.params.window_log;
        if current.wrapping_sub(self.low_limit) > max_distance {
            current - max_distance
        } else {
            self.low_limit
        }
    }

    /// `ZSTD_getLowestPrefixIndex` without a loaded dictionary.
    fn lowest_prefix_index(&self, current: u32) -> u32 {
        let max_distance = 1u32 << self.params.window_log;
        if current.wrapping_sub(self.dict_limit) > max_distance {
            current - max_distance
        } else {
            self.dict_limit
        }
    }

    fn byte(&self, index: u32) -> Option<u8> {
        let position = index.checked_sub(self.start)? as usize;
        self.window.get(position).copied()
    }

    fn read<const N: usize>(&self, index: u32) -> Option<[u8; N]> {
        if let Some(segment_end) = self.segment_end {
            if index < segment_end && index + N as u32 > segment_end {
                return None;
            }
        }
        let position = index.checked_sub(self.start)? as usize;
        let bytes = self.window.get(position..position.checked_add(N)?)?;
        bytes.try_into().ok()
    }

    fn read64(&self, index: u32) -> Option<u64> {
        self.read::<8>(index).map(u64::from_le_bytes)
    }

    fn equal<const N: usize>(&self, a: u32, b: u32) -> bool {
        match (self.read::<N>(a), self.read::<N>(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    fn long_hash(&self, index: u32) -> Option<usize> {
        let value = self.read64(index)?;
        Some((value.wrapping_mul(PRIME_8_BYTES) >> (64 - self.params.hash_log)) as usize)
    }

    fn short_hash(&self, index: u32) -> Option<usize> {
        let value = self.read64(index)?;
        let bits = self.params.chain_log;
        let hash = match self.params.min_match {
            4 => ((value as u32).wrapping_mul(PRIME_4_BYTES) >> (32 - bits)) as u64,
            5 => (value << 24).wrapping_mul(PRIME_5_BYTES) >> (64 - bits),
            6 => (value << 16).wrapping_mul(PRIME_6_BYTES) >> (64 - bits),
            7 => (value << 8).wrapping_mul(PRIME_7_BYTES) >> (64 - bits),
            _ => value.wrapping_mul(PRIME_8_BYTES) >> (64 - bits),
        };
        Some(hash as usize)
    }

    fn set_long(&mut self, index: u32) {
        if let Some(hash) = self.long_hash(index) {
            self.long[hash] = index;
        }
    }

    fn set_short(&mut self, index: u32) {
        if let Some(hash) = self.short_hash(index) {
            self.short[hash] = index;
        }
    }

    /// Equal bytes at `input` and `reference`, not counting past `limit` (`ZSTD_count`).
    fn count(&self, input: u32, reference: u32, limit: u32) -> u32 {
        let (Some(from), Some(to)) = (input.checked_sub(self.start), limit.checked_sub(self.start))
        else {
            return 0;
        };
        let Some(reference) = reference.checked_sub(self.start) else {
            return 0;
        };
        let to = (to as usize).min(self.window.len());
        let (from, reference) = (from as usize, reference as usize);
        if from >= to || reference >= self.window.len() {
            return 0;
        }
        let wanted = &self.window[from..to];
        let available = &self.window[reference..];
        let mut length = 0;
        for (a, b) in wanted.chunks(8).zip(available.chunks(8)) {
            if a == b {
                length += a.len();
                continue;
            }
            length += a.iter().zip(b).take_while(|(x, y)| x == y).count();
            break;
        }
        length as u32
    }

    /// The hash insertions after a match that began the search at `current` and ends at `ip`.
    fn complementary_insertion(&mut self, current: u32, ip: u32) {
        let inserted = current + 2;
        self.set_long(inserted);
        self.set_long(ip - 2);
        self.set_short(inserted);
        self.set_short(ip - 1);
    }

    /// Extends a match backwards while the bytes before it are equal ("catch up"), stopping at
    /// `anchor` and at the lowest valid index.
    fn catch_up(&self, found: &mut Found, anchor: u32, prefix_lowest: u32) {
        let mut reference = found.start - found.offset;
        while found.start > anchor && reference > prefix_lowest {
            match (self.byte(found.start - 1), self.byte(reference - 1)) {
                (Some(a), Some(b)) if a == b => {}
                _ => break,
            }
            found.start -= 1;
            reference -= 1;
            found.length += 1;
        }
    }

    /// Finds the sequences of the block `[start, start + length)` (window indices) as
    /// `ZSTD_compressBlock_doubleFast` does, appending them to `out`; `repeats` are the repeat
    /// offsets the block starts from and, on return, those it leaves. Returns the length of
    /// the block's last literals.
    pub fn compress_block(
        &mut self,
        start: u32,
        length: u32,
        repeats: &mut [u32; 3],
        out: &mut Vec<Sequence>,
    ) -> u32 {
        if self.older {
            return self.compress_block_1_4(start, length, repeats, out);
        }
        let end = start + length;
        let prefix_lowest = self.lowest_prefix_index(end);
        let mut ip = start;
        let mut anchor = start;
        let mut offset_1 = repeats[0];
        let mut offset_2 = repeats[1];
        let (mut saved_1, mut saved_2) = (0, 0);
        if ip == prefix_lowest {
            ip += 1;
        }
        let max_repeat = ip - self.lowest_prefix_index(ip);
        if offset_2 > max_repeat {
            (saved_2, offset_2) = (offset_2, 0);
        }
        if offset_1 > max_repeat {
            (saved_1, offset_1) = (offset_1, 0);
        }
        // ilimit = iend - HASH_READ_SIZE; a block shorter than that has no search position.
        if length > HASH_READ_SIZE {
            let limit = end - HASH_READ_SIZE;
            let mut offsets = (offset_1, offset_2);
            self.search(
                ip,
                limit,
                end,
                prefix_lowest,
                &mut offsets,
                &mut anchor,
                out,
            );
            (offset_1, offset_2) = offsets;
        }
        if saved_1 != 0 && offset_1 != 0 {
            saved_2 = saved_1;
        }
        repeats[0] = if offset_1 != 0 { offset_1 } else { saved_1 };
        repeats[1] = if offset_2 != 0 { offset_2 } else { saved_2 };
        end - anchor
    }

    /// The outer loop of the block compressor: one iteration per match stored.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        mut ip: u32,
        limit: u32,
        end: u32,
        prefix_lowest: u32,
        offsets: &mut (u32, u32),
        anchor: &mut u32,
        out: &mut Vec<Sequence>,
    ) {
        let step_increment = 1u32 << SEARCH_STRENGTH;
        loop {
            let mut step = 1u32;
            let mut next_step = ip + step_increment;
            let mut ip1 = ip + step;
            if ip1 > limit {
                return;
            }
            let Some(mut hash_long_0) = self.long_hash(ip) else {
                return;
            };
            let mut index_long_0 = self.long[hash_long_0];
            // The inner loop: one iteration per position searched.
            let (current, found, repeat_length) = loop {
                let Some(hash_short_0) = self.short_hash(ip) else {
                    return;
                };
                let index_short_0 = self.short[hash_short_0];
                let current = ip;
                self.long[hash_long_0] = current;
                self.short[hash_short_0] = current;

                let (offset_1, _) = *offsets;
                if offset_1 > 0
                    && (ip + 1)
                        .checked_sub(offset_1)
                        .is_some_and(|reference| self.equal::<4>(reference, ip + 1))
                {
                    let length = self.count(ip + 5, ip + 5 - offset_1, end) + 4;
                    break (current, None, Some(length));
                }
                let Some(hash_long_1) = self.long_hash(ip1) else {
                    return;
                };
                let newer = self.newer;
                let valid = |index: u32| index > prefix_lowest || (newer && index == prefix_lowest);
                if valid(index_long_0) && self.equal::<8>(index_long_0, ip) {
                    let mut found = Found {
                        start: ip,
                        offset: ip - index_long_0,
                        length: self.count(ip + 8, index_long_0 + 8, end) + 8,
                    };
                    self.catch_up(&mut found, *anchor, prefix_lowest);
                    break (current, Some((found, hash_long_1, ip1, step)), None);
                }
                let index_long_1 = self.long[hash_long_1];
                if valid(index_short_0) && self.equal::<4>(index_short_0, ip) {
                    let mut found = self.short_or_next_long(
                        (ip, index_short_0),
                        (ip1, index_long_1),
                        prefix_lowest,
                        end,
                    );
                    self.catch_up(&mut found, *anchor, prefix_lowest);
                    break (current, Some((found, hash_long_1, ip1, step)), None);
                }
                if ip1 >= next_step {
                    step += 1;
                    next_step += step_increment;
                }
                ip = ip1;
                ip1 += step;
                hash_long_0 = hash_long_1;
                index_long_0 = index_long_1;
                if ip1 > limit {
                    return;
                }
            };
            match (found, repeat_length) {
                (_, Some(length)) => {
                    ip += 1;
                    out.push(sequence(ip - *anchor, 1, length));
                    ip += length;
                }
                (Some((found, hash_long_1, ip1, step)), None) => {
                    offsets.1 = offsets.0;
                    offsets.0 = found.offset;
                    if step < 4 {
                        self.long[hash_long_1] = ip1;
                    }
                    out.push(sequence(
                        found.start - *anchor,
                        found.offset + 3,
                        found.length,
                    ));
                    ip = found.start + found.length;
                }
                (None, None) => return,
            }
            *anchor = ip;
            if ip <= limit {
                self.after_match(current, &mut ip, limit, end, offsets, anchor, out);
            }
        }
    }

    /// Having a short match at `ip` (candidate `short`), the match to take: the long match at
    /// the next position `ip1` (candidate `long`) if there is one — in libzstd 1.5.7 only if it
    /// is longer than the short match — otherwise the short match.
    fn short_or_next_long(
        &self,
        (ip, short): (u32, u32),
        (ip1, long): (u32, u32),
        prefix_lowest: u32,
        end: u32,
    ) -> Found {
        let next_long = (long > prefix_lowest && self.equal::<8>(long, ip1)).then(|| Found {
            start: ip1,
            offset: ip1 - long,
            length: self.count(ip1 + 8, long + 8, end) + 8,
        });
        let short_match = || Found {
            start: ip,
            offset: ip - short,
            length: self.count(ip + 4, short + 4, end) + 4,
        };
        match next_long {
            Some(next_long) if !self.newer => next_long,
            Some(next_long) => {
                let short_match = short_match();
                if next_long.length > short_match.length {
                    next_long
                } else {
                    short_match
                }
            }
            None => short_match(),
        }
    }

    /// After a match: the complementary hash insertions, then immediate repeat matches with
    /// the second repeat offset.
    #[allow(clippy::too_many_arguments)]
    fn after_match(
        &mut self,
        current: u32,
        ip: &mut u32,
        limit: u32,
        end: u32,
        offsets: &mut (u32, u32),
        anchor: &mut u32,
        out: &mut Vec<Sequence>,
    ) {
        self.complementary_insertion(current, *ip);
        while *ip <= limit {
            let offset_2 = offsets.1;
            if offset_2 == 0
                || !ip
                    .checked_sub(offset_2)
                    .is_some_and(|reference| self.equal::<4>(*ip, reference))
            {
                break;
            }
            let length = self.count(*ip + 4, *ip + 4 - offset_2, end) + 4;
            *offsets = (offset_2, offsets.0);
            self.set_short(*ip);
            self.set_long(*ip);
            out.push(sequence(0, 1, length));
            *ip += length;
            *anchor = *ip;
        }
    }
}

impl MatchState<'_> {
    /// [`MatchState::compress_block`] as libzstd 1.4 runs it: one position per iteration, the
    /// step growing with the distance from the last match, the next position's long match
    /// tried only after a short match, one saved repeat offset.
    fn compress_block_1_4(
        &mut self,
        start: u32,
        length: u32,
        repeats: &mut [u32; 3],
        out: &mut Vec<Sequence>,
    ) -> u32 {
        let end = start + length;
        let prefix_lowest = self.lowest_prefix_index(end);
        let mut ip = start;
        let mut anchor = start;
        let mut offsets = (repeats[0], repeats[1]);
        let mut saved = 0;
        if ip == prefix_lowest {
            ip += 1;
        }
        let max_repeat = ip - self.lowest_prefix_index(ip);
        if offsets.1 > max_repeat {
            (saved, offsets.1) = (offsets.1, 0);
        }
        if offsets.0 > max_repeat {
            (saved, offsets.0) = (offsets.0, 0);
        }
        if length > HASH_READ_SIZE {
            let limit = end - HASH_READ_SIZE;
            self.search_1_4(
                ip,
                (prefix_lowest, limit, end),
                &mut offsets,
                &mut anchor,
                out,
            );
        }
        repeats[0] = if offsets.0 != 0 { offsets.0 } else { saved };
        repeats[1] = if offsets.1 != 0 { offsets.1 } else { saved };
        end - anchor
    }

    /// The match search of the loops that try one position per iteration (libzstd 1.4's, and
    /// the external-segment variant): the long candidate at `ip`, else the short one, in which
    /// case the next position's long candidate (indexed on the way) is preferred. Candidates
    /// must lie above `lowest`.
    fn find_stepwise(
        &mut self,
        ip: u32,
        (index_long, index_short): (u32, u32),
        lowest: u32,
        end: u32,
    ) -> Option<Found> {
        if index_long > lowest && self.equal::<8>(index_long, ip) {
            return Some(Found {
                start: ip,
                offset: ip - index_long,
                length: self.count(ip + 8, index_long + 8, end) + 8,
            });
        }
        if !(index_short > lowest && self.equal::<4>(index_short, ip)) {
            return None;
        }
        let hash_next = self.long_hash(ip + 1)?;
        let index_next = self.long[hash_next];
        self.long[hash_next] = ip + 1;
        if index_next > lowest && self.equal::<8>(index_next, ip + 1) {
            return Some(Found {
                start: ip + 1,
                offset: ip + 1 - index_next,
                length: self.count(ip + 9, index_next + 8, end) + 8,
            });
        }
        Some(Found {
            start: ip,
            offset: ip - index_short,
            length: self.count(ip + 4, index_short + 4, end) + 4,
        })
    }

    /// Extends `found` backwards (not below `lowest`), makes its offset the first repeat
    /// offset and appends its sequence; returns where the match starts and its length.
    fn store_match(
        &self,
        mut found: Found,
        anchor: u32,
        lowest: u32,
        offsets: &mut (u32, u32),
        out: &mut Vec<Sequence>,
    ) -> (u32, u32) {
        self.catch_up(&mut found, anchor, lowest);
        *offsets = (found.offset, offsets.0);
        out.push(sequence(
            found.start - anchor,
            found.offset + 3,
            found.length,
        ));
        (found.start, found.length)
    }

    /// The search loop of libzstd 1.4's `dfast`.
    fn search_1_4(
        &mut self,
        mut ip: u32,
        (prefix_lowest, limit, end): (u32, u32, u32),
        offsets: &mut (u32, u32),
        anchor: &mut u32,
        out: &mut Vec<Sequence>,
    ) {
        while ip < limit {
            let (Some(hash_long), Some(hash_short)) = (self.long_hash(ip), self.short_hash(ip))
            else {
                return;
            };
            let index_long = self.long[hash_long];
            let index_short = self.short[hash_short];
            let current = ip;
            self.long[hash_long] = current;
            self.short[hash_short] = current;
            let offset_1 = offsets.0;
            let match_length;
            if offset_1 > 0
                && (ip + 1)
                    .checked_sub(offset_1)
                    .is_some_and(|reference| self.equal::<4>(reference, ip + 1))
            {
                match_length = self.count(ip + 5, ip + 5 - offset_1, end) + 4;
                ip += 1;
                out.push(sequence(ip - *anchor, 1, match_length));
            } else {
                let found = self.find_stepwise(ip, (index_long, index_short), prefix_lowest, end);
                let Some(found) = found else {
                    ip += ((ip - *anchor) >> SEARCH_STRENGTH) + 1;
                    continue;
                };
                let start = self.store_match(found, *anchor, prefix_lowest, offsets, out);
                ip = start.0;
                match_length = start.1;
            }
            ip += match_length;
            *anchor = ip;
            if ip <= limit {
                self.after_match(current, &mut ip, limit, end, offsets, anchor, out);
            }
        }
    }
}

impl MatchState<'_> {
    /// Like [`MatchState::compress_block`] while an older segment of the window lies in a
    /// separate buffer (`ZSTD_compressBlock_doubleFast_extDict`, used by a single-threaded
    /// stream once its input buffer wrapped): a simpler loop whose step grows with the distance
    /// to the last match, with matches allowed into the older segment.
    pub fn compress_block_external(
        &mut self,
        start: u32,
        length: u32,
        repeats: &mut [u32; 3],
        out: &mut Vec<Sequence>,
    ) -> u32 {
        let end = start + length;
        let dict_start = self.lowest_match_index(end);
        let prefix_start = self.dict_limit.max(dict_start);
        if prefix_start == dict_start {
            return self.compress_block(start, length, repeats, out);
        }
        self.segment_end = Some(prefix_start);
        let mut anchor = start;
        let mut offsets = (repeats[0], repeats[1]);
        if length > HASH_READ_SIZE {
            let limit = end - HASH_READ_SIZE;
            let bounds = (dict_start, prefix_start, limit, end);
            self.search_external(start, bounds, &mut offsets, &mut anchor, out);
        }
        self.segment_end = None;
        repeats[0] = offsets.0;
        repeats[1] = offsets.1;
        end - anchor
    }

    /// Whether a repeat match at `reference` for a search at `current` stays inside one
    /// segment and the window.
    fn repeat_valid(&self, reference: u32, offset: u32, current: u32, bounds: (u32, u32)) -> bool {
        let (dict_start, prefix_start) = bounds;
        (prefix_start.wrapping_sub(1).wrapping_sub(reference) >= 3)
            && current
                .checked_sub(dict_start)
                .is_some_and(|reach| offset <= reach)
    }

    /// The search loop of the external-dictionary variant.
    fn search_external(
        &mut self,
        mut ip: u32,
        (dict_start, prefix_start, limit, end): (u32, u32, u32, u32),
        offsets: &mut (u32, u32),
        anchor: &mut u32,
        out: &mut Vec<Sequence>,
    ) {
        let floor = |index: u32| {
            if index < prefix_start {
                dict_start
            } else {
                prefix_start
            }
        };
        while ip < limit {
            let (Some(hash_short), Some(hash_long)) = (self.short_hash(ip), self.long_hash(ip))
            else {
                return;
            };
            let index_short = self.short[hash_short];
            let index_long = self.long[hash_long];
            let current = ip;
            let repeat_index = current.wrapping_add(1).wrapping_sub(offsets.0);
            self.short[hash_short] = current;
            self.long[hash_long] = current;
            let match_length;
            if self.repeat_valid(
                repeat_index,
                offsets.0,
                current + 1,
                (dict_start, prefix_start),
            ) && self.equal::<4>(repeat_index, ip + 1)
            {
                match_length = self.count(ip + 5, repeat_index.wrapping_add(4), end) + 4;
                ip += 1;
                out.push(sequence(ip - *anchor, 1, match_length));
            } else {
                let found = self.find_stepwise(ip, (index_long, index_short), dict_start, end);
                let Some(found) = found else {
                    ip += ((ip - *anchor) >> SEARCH_STRENGTH) + 1;
                    continue;
                };
                let lowest = floor(found.start - found.offset);
                let start = self.store_match(found, *anchor, lowest, offsets, out);
                ip = start.0;
                match_length = start.1;
            }
            ip += match_length;
            *anchor = ip;
            if ip <= limit {
                self.complementary_insertion(current, ip);
                self.repeat_external(
                    &mut ip,
                    (dict_start, prefix_start, limit, end),
                    offsets,
                    anchor,
                    out,
                );
            }
        }
    }

    /// Immediate matches with the second repeat offset after a match (external-dictionary
    /// variant).
    fn repeat_external(
        &mut self,
        ip: &mut u32,
        (dict_start, prefix_start, limit, end): (u32, u32, u32, u32),
        offsets: &mut (u32, u32),
        anchor: &mut u32,
        out: &mut Vec<Sequence>,
    ) {
        while *ip <= limit {
            let current = *ip;
            let offset_2 = offsets.1;
            let reference = current.wrapping_sub(offset_2);
            if !(self.repeat_valid(reference, offset_2, current, (dict_start, prefix_start))
                && self.equal::<4>(reference, current))
            {
                break;
            }
            let length = self.count(current + 4, reference.wrapping_add(4), end) + 4;
            *offsets = (offset_2, offsets.0);
            out.push(sequence(0, 1, length));
            self.set_short(current);
            self.set_long(current);
            *ip += length;
            *anchor = *ip;
        }
    }
}

fn sequence(literal_length: u32, offset_value: u32, match_length: u32) -> Sequence {
    Sequence {
        literal_length,
        offset_value,
        match_length,
    }
}
