//! Recomputes the parse (the sequences of every block) that libzstd's level-3 compressor made
//! of a frame's content, without libzstd.
//!
//! A zstd frame can only be rebuilt from a small delta when the device finds the producer's
//! sequences itself. This module is a port of libzstd 1.5.4's `dfast` strategy (levels 3 and
//! 4), with the variants of 1.4.8 and 1.5.7 ([`DfastVersion`]), and the frame-level rules
//! around it: the compression parameters of the level for
//! the content size, the jobs of multithreaded compression (each compressed by a fresh context
//! seeded with an overlap of the previous content, repeat offsets reset), the per-block window
//! limits and the repeat offsets a block starts from. Which blocks were emitted compressed is
//! an input: a raw or RLE block does not pass its repeat offsets on.
//!
//! Memory: the two hash tables (2^`hash_log` + 2^`chain_log` `u32`, 768 KiB at level 3) and one
//! block's sequences; the content is borrowed.

mod dfast;
#[cfg(test)]
mod tests;

use super::zstd_structure::{BlockKind, Sequence, StructureError, ZstdFrame, MAX_BLOCK_SIZE};
use dfast::MatchState;

/// Blocks shorter than this are stored without running the match finder (libzstd's
/// `MIN_CBLOCK_SIZE + ZSTD_blockHeaderSize + 1 + 1`).
const MIN_SEARCHED_BLOCK: u32 = 7;
/// Content a single job may span: window indices must stay far below `u32::MAX`.
const MAX_JOB_CONTENT: usize = 1 << 30;
/// Smallest job of a multithreaded frame (`ZSTDMT_JOBSIZE_MIN`, libzstd 1.5); smaller known
/// inputs are compressed single-threaded.
pub const MIN_JOB_SIZE: usize = 512 << 10;

/// The `dfast` compression parameters that shape the parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DfastParams {
    /// log2 of the window (the farthest a match may reach).
    pub window_log: u32,
    /// log2 of the entries of the 8-byte hash table.
    pub hash_log: u32,
    /// log2 of the entries of the short hash table.
    pub chain_log: u32,
    /// Bytes the short hash covers (4–7; 3 acts as 4).
    pub min_match: u32,
}

impl DfastParams {
    /// Level 3's parameters in libzstd 1.5.x for a frame of `content_size` bytes (`None` when the
    /// producer did not know it, e.g. compressing a pipe): the table row of the size class,
    /// then the window shrunk to the content and the tables to the window
    /// (`ZSTD_getCParams`, `ZSTD_adjustCParams_internal`).
    pub fn level3(content_size: Option<u64>) -> Self {
        let (window_log, chain_log, hash_log, min_match) = match content_size {
            Some(size) if size <= 16 << 10 => (14, 14, 15, 4),
            Some(size) if size <= 128 << 10 => (17, 15, 16, 5),
            Some(size) if size <= 256 << 10 => (18, 16, 16, 4),
            _ => (21, 16, 17, 5),
        };
        let mut params = DfastParams {
            window_log,
            hash_log,
            chain_log,
            min_match,
        };
        if let Some(size) = content_size.filter(|&size| size <= 1 << 30) {
            let source_log = if size < 64 {
                6
            } else {
                64 - (size - 1).leading_zeros()
            };
            params.window_log = params.window_log.min(source_log);
            params.hash_log = params.hash_log.min(params.window_log + 1);
            params.chain_log = params.chain_log.min(params.window_log);
            params.window_log = params.window_log.max(10);
        }
        params
    }

    /// Refuses parameters outside what libzstd accepts for `dfast` (they may come from a
    /// delta), so the tables stay bounded (at most 2 × 2^24 entries).
    pub fn validate(&self) -> Result<(), StructureError> {
        let valid = (10..=27).contains(&self.window_log)
            && (6..=24).contains(&self.hash_log)
            && (6..=24).contains(&self.chain_log)
            && (3..=7).contains(&self.min_match);
        if valid {
            Ok(())
        } else {
            Err(StructureError::new("dfast parameters out of range"))
        }
    }
}

/// Which libzstd versions' `dfast` the port follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DfastVersion {
    /// libzstd 1.5.2 to 1.5.6 (measured exact on 1.5.2, 1.5.4, 1.5.5 and 1.5.6).
    #[default]
    Libzstd152To156,
    /// libzstd 1.4.8's older search loop (its window also starts at index 1; not verified for
    /// the CLI's single-threaded streaming).
    Libzstd148,
    /// libzstd 1.5.7's changed candidate rules (block boundaries, which 1.5.7 chooses by
    /// splitting blocks first, come from the frame).
    Libzstd157,
}

/// How the producer cut the content into independently compressed jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threading {
    /// One context compressed the whole frame from contiguous input (library one-shot or
    /// streaming with the whole input given, `nbWorkers` 0, or a multithreaded frame of one job).
    Single,
    /// One context fed through its own input buffer (`ZSTD_compressStream2` in buffered mode
    /// without workers, as the zstd CLI does with `--single-thread` or for a known content of at
    /// most [`MIN_JOB_SIZE`] bytes): the buffer holds a window and a block, and once it wraps
    /// around the older part of the window is searched as a separate segment.
    Streaming,
    /// Multithreaded (`ZSTDMT`): jobs of `job_size` bytes, each but the first seeded with the
    /// last `overlap` bytes before it.
    Jobs {
        /// Content bytes per job (the last job may be shorter).
        job_size: usize,
        /// Bytes of previous content each job but the first indexes first.
        overlap: usize,
    },
}

/// Everything about the producer that the parse depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    /// The compression parameters.
    pub params: DfastParams,
    /// Job structure.
    pub threading: Threading,
    /// The library version family.
    pub version: DfastVersion,
}

impl Producer {
    /// libzstd 1.5.x at level 3 with worker threads (the zstd CLI's default, `-T0`, `-T2`…):
    /// `job_size` is `-B`'s value or `None` for the default (4 windows); the overlap is an
    /// eighth of the window. A known content of at most [`MIN_JOB_SIZE`] bytes is compressed
    /// single-threaded, as libzstd does.
    pub fn level3_multithreaded(content_size: Option<u64>, job_size: Option<usize>) -> Self {
        Self::level3_multithreaded_version(content_size, job_size, DfastVersion::default())
    }

    /// [`Producer::level3_multithreaded`] for the library version `version`, whose smallest
    /// job may differ (1 MiB in 1.4.8).
    pub fn level3_multithreaded_version(
        content_size: Option<u64>,
        job_size: Option<usize>,
        version: DfastVersion,
    ) -> Self {
        let params = DfastParams::level3(content_size);
        let min_job_size = match version {
            DfastVersion::Libzstd148 => 1 << 20,
            _ => MIN_JOB_SIZE,
        };
        if content_size.is_some_and(|size| size <= min_job_size as u64) {
            return Producer {
                params,
                threading: Threading::Streaming,
                version,
            };
        }
        let default_job = 1usize << (params.window_log + 2).max(20);
        let overlap = 1usize << (params.window_log - 3);
        let job_size = job_size
            .filter(|&size| size != 0)
            .unwrap_or(default_job)
            .clamp(min_job_size, MAX_JOB_CONTENT)
            .max(overlap);
        Producer {
            params,
            threading: Threading::Jobs { job_size, overlap },
            version,
        }
    }

    /// The zstd CLI (1.5.4/1.5.5) at level 3 with `--single-thread`.
    pub fn level3_cli_single_thread(content_size: Option<u64>) -> Self {
        Producer {
            params: DfastParams::level3(content_size),
            threading: Threading::Streaming,
            version: DfastVersion::default(),
        }
    }

    /// libzstd 1.5.4/1.5.5 at level 3 without workers, given the whole input at once.
    pub fn level3_single(content_size: Option<u64>) -> Self {
        Producer {
            params: DfastParams::level3(content_size),
            threading: Threading::Single,
            version: DfastVersion::default(),
        }
    }

    /// The same producer with another library version's rules.
    pub fn with_version(self, version: DfastVersion) -> Self {
        Producer { version, ..self }
    }
}

/// What the recomputation needs to know of a block of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    /// Bytes of content the block holds.
    pub content_length: u32,
    /// Whether the producer emitted it compressed (only then do its repeat offsets carry on).
    pub compressed: bool,
}

impl BlockShape {
    /// The shapes of a parsed frame's blocks.
    pub fn of_frame(frame: &ZstdFrame) -> Vec<BlockShape> {
        frame
            .blocks
            .iter()
            .map(|block| BlockShape {
                content_length: block.content_length,
                compressed: matches!(block.kind, BlockKind::Compressed(_)),
            })
            .collect()
    }
}

/// Recomputes the sequences `producer` found in each block of a frame whose content is
/// `content` and whose blocks are `blocks`, calling `visit(block_number, sequences)` for every
/// block in order (blocks the match finder skips get an empty list; the block's last literals
/// are what its sequences leave uncovered). Stops at the first error `visit` returns.
pub fn block_sequences<F>(
    content: &[u8],
    blocks: &[BlockShape],
    producer: &Producer,
    mut visit: F,
) -> Result<(), StructureError>
where
    F: FnMut(usize, &[Sequence]) -> Result<(), StructureError>,
{
    producer.params.validate()?;
    check_block_lengths(content, blocks)?;
    let (job_size, overlap) = match producer.threading {
        Threading::Single => (content.len().max(1), 0),
        Threading::Streaming => {
            return streaming_block_sequences(content, blocks, producer, visit);
        }
        Threading::Jobs { job_size, overlap } => (job_size, overlap.min(job_size)),
    };
    if job_size == 0 || job_size > MAX_JOB_CONTENT || overlap > MAX_JOB_CONTENT {
        return Err(StructureError::new("job size out of range"));
    }
    let mut tables = (Vec::new(), Vec::new());
    let mut sequences = Vec::new();
    let mut next_block = 0;
    let mut job_start = 0;
    loop {
        let job_end = job_start + job_size.min(content.len() - job_start);
        let prefix = if job_start == 0 { 0 } else { overlap };
        let window = &content[job_start - prefix..job_end];
        let mut state = MatchState::new(window, producer.params, producer.version, tables);
        state.load_prefix(prefix as u32);
        let mut repeats = if job_start == 0 { [1, 4, 8] } else { [0; 3] };
        let mut index = state.start_index() + prefix as u32;
        let mut position = job_start;
        while let Some(block) = blocks.get(next_block) {
            let length = block.content_length;
            if position == job_end && (length != 0 || job_end < content.len()) {
                break;
            }
            if position + length as usize > job_end {
                return Err(StructureError::new("block crosses a job boundary"));
            }
            sequences.clear();
            state.enforce_max_distance(index);
            if length >= MIN_SEARCHED_BLOCK {
                let mut block_repeats = repeats;
                state.compress_block(index, length, &mut block_repeats, &mut sequences);
                if block.compressed {
                    repeats = block_repeats;
                }
            }
            visit(next_block, &sequences)?;
            next_block += 1;
            index += length;
            position += length as usize;
        }
        tables = state.into_tables();
        if job_end >= content.len() {
            return Ok(());
        }
        job_start = job_end;
    }
}

/// Checks that `blocks` cover `content` exactly, each at most [`MAX_BLOCK_SIZE`].
fn check_block_lengths(content: &[u8], blocks: &[BlockShape]) -> Result<(), StructureError> {
    let total = blocks.iter().try_fold(0usize, |sum, block| {
        (block.content_length as usize <= MAX_BLOCK_SIZE)
            .then(|| sum.checked_add(block.content_length as usize))
            .flatten()
    });
    if total != Some(content.len()) {
        return Err(StructureError::new(
            "block lengths do not add up to the content",
        ));
    }
    Ok(())
}

/// Where a single-threaded stream's input buffer puts each block, and the window limits that
/// follow (`ZSTD_compressStream_generic`'s buffer positions, `ZSTD_window_update`).
struct StreamWindow {
    buffer_size: u32,
    block_size: u32,
    /// Buffer offset of the next block.
    position: u32,
    /// Buffer offset where the previous block ended (`nextSrc`).
    next_source: Option<u32>,
    /// Window index minus buffer offset of the older segment's buffer (`dictBase`).
    segment_shift: u32,
}

impl StreamWindow {
    fn new(params: DfastParams, start_index: u32) -> Self {
        let window = 1u32 << params.window_log;
        let block_size = window.min(MAX_BLOCK_SIZE as u32);
        StreamWindow {
            buffer_size: window + block_size,
            block_size,
            position: 0,
            next_source: None,
            segment_shift: start_index,
        }
    }

    /// Updates the limits `(low, dict)` for the block of `length` bytes at window index `index`.
    fn place(&mut self, index: u32, length: u32, (mut low, mut dict): (u32, u32)) -> (u32, u32) {
        if length == 0 {
            return (low, dict);
        }
        let shift = index - self.position;
        if self.next_source.is_some_and(|next| next != self.position) {
            low = dict;
            dict = index;
            self.segment_shift = self.next_source.map_or(shift, |next| index - next);
            if dict - low < 8 {
                low = dict;
            }
        }
        self.next_source = Some(self.position + length);
        let input_start = self.position + self.segment_shift;
        let input_end = input_start + length;
        if input_end > low && input_start < dict {
            low = dict.min(input_end);
        }
        self.position += length;
        if self.position + self.block_size > self.buffer_size {
            self.position = 0;
        }
        (low, dict)
    }
}

/// [`block_sequences`] for [`Threading::Streaming`].
fn streaming_block_sequences<F>(
    content: &[u8],
    blocks: &[BlockShape],
    producer: &Producer,
    mut visit: F,
) -> Result<(), StructureError>
where
    F: FnMut(usize, &[Sequence]) -> Result<(), StructureError>,
{
    if content.len() > MAX_JOB_CONTENT {
        return Err(StructureError::new("content too large for one context"));
    }
    let params = producer.params;
    let mut state = MatchState::new(content, params, producer.version, (Vec::new(), Vec::new()));
    let mut stream = StreamWindow::new(params, state.start_index());
    let mut repeats = [1, 4, 8];
    let mut index = state.start_index();
    let mut sequences = Vec::new();
    for (number, block) in blocks.iter().enumerate() {
        let length = block.content_length;
        let limits = stream.place(index, length, state.limits());
        state.set_limits(limits.0, limits.1);
        sequences.clear();
        state.enforce_max_distance(index);
        if length >= MIN_SEARCHED_BLOCK {
            let mut block_repeats = repeats;
            let (low, dict) = state.limits();
            if low < dict {
                state.compress_block_external(index, length, &mut block_repeats, &mut sequences);
            } else {
                state.compress_block(index, length, &mut block_repeats, &mut sequences);
            }
            if block.compressed {
                repeats = block_repeats;
            }
        }
        visit(number, &sequences)?;
        index += length;
    }
    Ok(())
}
