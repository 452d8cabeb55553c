//! zstd members described for the extended format's `zstd_compression_exact` recipe: the
//! frame's content plus the libzstd parameters that make exactly this frame again (like the
//! zlib level search of [`crate::tool::gzip`]), when this library's libzstd made it.
//!
//! The search reads what the frame header tells (checksum, whether the content size was
//! known, the window log), keeps the levels whose window log matches, and compresses with each
//! candidate in the applier's own way ([`adudiff_core::codec::zstd_compress::reproduces`]), most likely first,
//! stopping at the first byte that differs. Its cost is bounded by [`SEARCH_BUDGET_FACTOR`].

//!
//! A frame this libzstd does not make may still be one of libzstd's level-3 (`dfast`) frames
//! (the zstd CLI's default level, as Yocto and Debian build images): [`find_structure`] parses
//! it, recomputes its parse with the ported compressor for the usual producers (job mode with
//! the default or the frame's job size, the CLI's single thread, one-shot) and, when the parse
//! finds (nearly) every block's sequences, describes it for the `zstd_reconstruct` recipe.

use std::sync::Arc;

use adudiff_core::codec::zstd_compress::{
    self as zc, ZstdParams, FLAG_CHECKSUM, FLAG_CONTENT_SIZE, FLAG_JOBS, FLAG_LONG, FLAG_PLEDGED,
};
use adudiff_core::codec::zstd_parse::{DfastParams, Producer, Threading};
use adudiff_core::codec::zstd_reconstruct::{self as zr, Structure};
use adudiff_core::codec::zstd_structure::{self as zs, BlockKind, Frame};

/// First bytes of a zstd frame.
pub const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The search may compress this many times the content (plus [`SEARCH_BUDGET_EXTRA`]) in all,
/// counting wrong candidates, before it gives up.
pub const SEARCH_BUDGET_FACTOR: u64 = 4;
/// Content the search may compress beyond [`SEARCH_BUDGET_FACTOR`] times the content.
pub const SEARCH_BUDGET_EXTRA: u64 = 64 << 20;
/// Most candidates tried.
pub const MAX_CANDIDATES: usize = 64;
/// Largest window a frame may need to be decoded here (the applier decodes up to 2^27 without
/// a prefix; a larger one is not a usable basis either).
pub const MAX_DECODE_WINDOW_LOG: u32 = 27;
/// Levels in the order they are tried (the CLI's default 3, the common 19, then the rest).
pub const LEVEL_ORDER: [i32; 32] = [
    3, 19, 9, 1, 6, 12, 22, 2, 4, 5, 7, 8, 10, 11, 13, 14, 15, 16, 17, 18, 20, 21, -1, -2, -3, -4,
    -5, -6, -7, -8, -9, -10,
];

/// Whether `data` starts like a zstd frame.
pub fn is_zstd(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// What the header of a frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The content checksum is present.
    pub checksum: bool,
    /// The content size is in the header.
    pub content_size: bool,
    /// The window log (none for a single-segment frame, whose window is its content).
    pub window_log: Option<u32>,
}

/// Parses the header of the frame at the start of `data`; `Err` says why it is not one the
/// recipe can make (a dictionary, a window size libzstd does not write).
pub fn frame_header(data: &[u8]) -> Result<FrameHeader, String> {
    if !is_zstd(data) || data.len() < 6 {
        return Err("not a zstd frame".into());
    }
    let fhd = data[4];
    if fhd & 3 != 0 {
        return Err("the frame references a dictionary".into());
    }
    let single_segment = fhd & 0x20 != 0;
    let window_log = if single_segment {
        None
    } else {
        let wd = data[5];
        if wd & 7 != 0 {
            return Err("a window size libzstd does not write".into());
        }
        Some(10 + u32::from(wd >> 3))
    };
    Ok(FrameHeader {
        checksum: fhd & 4 != 0,
        content_size: fhd >> 6 != 0 || single_segment,
        window_log,
    })
}

/// Decodes `data` when it is exactly one zstd frame whose window the applier accepts
/// (`Err`: why not).
pub fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
    let header = frame_header(data)?;
    if header.window_log.is_some_and(|w| w > MAX_DECODE_WINDOW_LOG) {
        return Err(format!(
            "its window (2^{}) is larger than 2^{MAX_DECODE_WINDOW_LOG}",
            header.window_log.unwrap_or(0)
        ));
    }
    let frame_len = zstd_safe::find_frame_compressed_size(data)
        .map_err(|c| format!("not a valid frame ({})", zstd_safe::get_error_name(c)))?;
    if frame_len != data.len() {
        return Err("more than one frame (or bytes after the frame)".into());
    }
    let mut dctx = zstd_safe::DCtx::create();
    dctx.set_parameter(zstd_safe::DParameter::WindowLogMax(MAX_DECODE_WINDOW_LOG))
        .map_err(|c| zstd_safe::get_error_name(c).to_string())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; zstd_safe::DCtx::out_size()];
    let mut input = zstd_safe::InBuffer::around(data);
    loop {
        let mut output = zstd_safe::OutBuffer::around(&mut buf[..]);
        let left = dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(|c| format!("does not decode ({})", zstd_safe::get_error_name(c)))?;
        let n = output.pos();
        out.try_reserve(n)
            .map_err(|_| "out of memory decoding it".to_string())?;
        out.extend_from_slice(&buf[..n]);
        if left == 0 {
            return Ok(out);
        }
        if n == 0 && input.pos() == data.len() {
            return Err("truncated frame".into());
        }
    }
}

/// The candidates worth trying for a frame with `header` and `content_len` bytes of content,
/// most likely first.
pub fn candidates(header: &FrameHeader, content_len: u64) -> Vec<ZstdParams> {
    let checksum = if header.checksum { FLAG_CHECKSUM } else { 0 };
    // Size known up front (a file) or not (a pipe); a known size without the header field is
    // `--no-content-size`.
    let sizes: &[u64] = if header.content_size {
        &[FLAG_PLEDGED | FLAG_CONTENT_SIZE]
    } else {
        &[0, FLAG_PLEDGED]
    };
    // The zstd CLI compresses in job mode (its default since 1.5.0); libraries default to one
    // thread. Job mode runs one thread below 512 KiB of pledged content (the same frame).
    let modes: &[u64] = if header.content_size && content_len <= zc::MIN_JOB_SIZE {
        &[0]
    } else {
        &[FLAG_JOBS, 0]
    };
    let mut out = Vec::new();
    let push = |out: &mut Vec<ZstdParams>, p: ZstdParams| {
        if !out.contains(&p) && out.len() < MAX_CANDIDATES {
            out.push(p);
        }
    };
    let fits = |p: &ZstdParams| {
        header
            .window_log
            .is_none_or(|w| p.effective_window_log(content_len) == w)
    };
    for &mode in modes {
        for &size in sizes {
            for level in LEVEL_ORDER {
                let p = ZstdParams {
                    level,
                    flags: checksum | size | mode,
                    window_log: 0,
                    job_size: 0,
                };
                if fits(&p) {
                    push(&mut out, p);
                }
            }
        }
    }
    // An explicit window (`--long`, `--zstd=wlog=`): the window log from the header, when no
    // usual level (≤ 19) has that window at this size. (Every wrong job-mode try costs up to
    // a job of compression per worker — libzstd finishes running jobs before it lets go —, so
    // the list stays short when the header already points at the usual levels.)
    let usual = out.iter().any(|p| p.level <= 19);
    if let Some(w) = header
        .window_log
        .filter(|&w| u64::from(w) <= zc::MAX_WINDOW_LOG && !usual)
    {
        for &mode in modes {
            for &size in sizes {
                for level in [3, 19, 9, 1, 22] {
                    for long in [FLAG_LONG, 0] {
                        push(
                            &mut out,
                            ZstdParams {
                                level,
                                flags: checksum | size | mode | long,
                                window_log: w,
                                job_size: 0,
                            },
                        );
                    }
                }
            }
        }
    }
    out
}

/// Outcome of the search for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// These parameters make the frame again.
    Found(ZstdParams),
    /// Not reproducible with this library's libzstd; why.
    NotFound(String),
}

/// Finds the parameters with which this library's libzstd makes `frame` from `content`.
pub fn find_params(content: &[u8], frame: &[u8]) -> Search {
    find_params_among(content, frame, |_| true)
}

/// [`find_params`] among the candidates `wanted` keeps.
fn find_params_among(content: &[u8], frame: &[u8], wanted: impl Fn(&ZstdParams) -> bool) -> Search {
    let header = match frame_header(frame) {
        Ok(h) => h,
        Err(why) => return Search::NotFound(why),
    };
    let len = content.len() as u64;
    let mut budget = len
        .saturating_mul(SEARCH_BUDGET_FACTOR)
        .saturating_add(SEARCH_BUDGET_EXTRA);
    let mut list = candidates(&header, len);
    list.retain(|p| wanted(p));
    let tried = list.len();
    for p in list {
        match zc::reproduces(content, frame, p, 2, &mut budget) {
            Some(true) => return Search::Found(p),
            Some(false) => {}
            None if budget == 0 || budget < len => {
                return Search::NotFound(format!(
                    "libzstd {} does not make this frame (search budget spent)",
                    version()
                ))
            }
            None => {}
        }
    }
    Search::NotFound(format!(
        "libzstd {} does not make this frame at any level tried ({tried} parameter sets; \
         another zstd version or unusual options made it)",
        version()
    ))
}

/// How a zstd frame is made again on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZstdRecipe {
    /// By this library's libzstd with these parameters (`zstd_compression_exact`).
    Exact(ZstdParams),
    /// From its content and a structure blob (`zstd_reconstruct`, codec 1 version 1).
    Rebuild {
        /// The structure blob.
        blob: Arc<Vec<u8>>,
        /// What the structure says, for the report.
        summary: String,
    },
}

impl ZstdRecipe {
    /// Human-readable description for the report.
    pub fn describe(&self) -> String {
        match self {
            ZstdRecipe::Exact(p) => describe(p),
            ZstdRecipe::Rebuild { summary, .. } => summary.clone(),
        }
    }
}

/// How `frame` (whose content is `content`) is made again: this libzstd's parameters when it
/// makes the frame, otherwise the frame's structure when the level-3 parse finds it; `Err`
/// says why neither does. The cheap tries come first: this libzstd at level 3, the structure,
/// then every other level.
pub fn find_recipe(content: &[u8], frame: &[u8]) -> Result<ZstdRecipe, String> {
    if let Search::Found(p) = find_params_among(content, frame, |p| p.level == 3) {
        return Ok(ZstdRecipe::Exact(p));
    }
    let structure_why = match find_structure(content, frame) {
        Ok(recipe) => return Ok(recipe),
        Err(why) => why,
    };
    match find_params_among(content, frame, |p| p.level != 3) {
        Search::Found(p) => Ok(ZstdRecipe::Exact(p)),
        Search::NotFound(why) => Err(format!("{why}; {structure_why}")),
    }
}

/// Most blocks a structure may carry in full: a few, or 1 % of the blocks.
fn carried_allowance(blocks: usize) -> usize {
    4 + blocks / 100
}

/// The producers worth trying for a level-3 frame of `content_size` bytes (`None`: unknown to
/// the producer) whose blocks have `block_lengths`: job mode with the default job size and
/// with the job size the first short block implies, the CLI's single thread, one-shot.
pub fn level3_producers(content_size: Option<u64>, block_lengths: &[u32]) -> Vec<Producer> {
    let mut out = vec![Producer::level3_multithreaded(content_size, None)];
    // In job mode every job but the last ends with a block shorter than a full one when the
    // job size is not a multiple of the block size (`-B` of other sizes).
    let full = zs::MAX_BLOCK_SIZE as u32;
    let mut position = 0usize;
    for (i, &length) in block_lengths.iter().enumerate() {
        position += length as usize;
        if length < full && i + 1 < block_lengths.len() {
            out.push(Producer::level3_multithreaded(content_size, Some(position)));
            break;
        }
    }
    // Job sizes that are multiples of the block size leave no trace in the block lengths.
    for shift in 19..=26 {
        out.push(Producer::level3_multithreaded(
            content_size,
            Some(1 << shift),
        ));
    }
    out.push(Producer::level3_cli_single_thread(content_size));
    out.push(Producer::level3_single(content_size));
    let mut unique: Vec<Producer> = Vec::new();
    for p in out {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    unique
}

/// Content the producers are first compared on (then the best runs on all of it).
const SCREEN_CONTENT: usize = 24 << 20;

/// Describes `frame` for `zstd_reconstruct` when it is one level-3 frame whose parse the port
/// finds in all blocks but at most 4 + 1 % of them (those are carried); `Err` says why not.
pub fn find_structure(content: &[u8], frame: &[u8]) -> Result<ZstdRecipe, String> {
    let parsed = zs::parse(frame, content.len()).map_err(|e| format!("{e}"))?;
    let zstd_frame = match &parsed.frames[..] {
        [Frame::Zstd(f)] => f,
        _ => return Err("not one zstd frame".into()),
    };
    let header = frame_header(frame)?;
    let size = header.content_size.then_some(content.len() as u64);
    let level3 = DfastParams::level3(size);
    if header.window_log.is_some_and(|w| w != level3.window_log) {
        return Err("its window is not level 3's for its size".into());
    }
    let compressed = zstd_frame
        .blocks
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Compressed(_)))
        .count();
    if compressed == 0 {
        return Err("it has no compressed block (not a level-3 frame)".into());
    }
    let lengths: Vec<u32> = zstd_frame.blocks.iter().map(|b| b.content_length).collect();
    let blocks = lengths.len();
    // Screen every producer on a prefix (the parse of a block depends only on what precedes
    // it), then check the best ones on everything.
    let screen_blocks = lengths
        .iter()
        .scan(0usize, |sum, &l| {
            *sum += l as usize;
            Some(*sum)
        })
        .take_while(|&end| end <= SCREEN_CONTENT)
        .count()
        .max(1);
    let screen_len: usize = lengths[..screen_blocks].iter().map(|&l| l as usize).sum();
    let prefix = zs::ZstdFrame {
        header: zstd_frame.header.clone(),
        blocks: zstd_frame.blocks[..screen_blocks].to_vec(),
    };
    let mut ranked: Vec<(usize, Producer)> = level3_producers(size, &lengths)
        .into_iter()
        .filter_map(|p| {
            let missed = zr::mismatched_blocks(&prefix, &content[..screen_len], &p).ok()?;
            Some((missed.len(), p))
        })
        .collect();
    ranked.sort_by_key(|&(missed, _)| missed);
    for (_, producer) in ranked.into_iter().take(2) {
        let Ok(carried) = zr::mismatched_blocks(zstd_frame, content, &producer) else {
            continue;
        };
        if carried.len() > carried_allowance(blocks) {
            continue;
        }
        let structure = Structure::of_frame(zstd_frame, producer, &carried);
        let blob = structure.write();
        // The device's own path, end to end.
        if zr::rebuild(content, &structure, frame.len() as u64)
            .ok()
            .as_deref()
            != Some(frame)
        {
            continue;
        }
        let summary = format!(
            "rebuilt from its structure: libzstd level-3 parse, {}; {} of {compressed} compressed blocks carried, {} bytes",
            describe_producer(&producer),
            carried.len(),
            blob.len()
        );
        return Ok(ZstdRecipe::Rebuild {
            blob: Arc::new(blob),
            summary,
        });
    }
    Err("nor is it a libzstd 1.5.2–1.5.6 level-3 frame".into())
}

/// `job mode (job 512 KiB)`, `single thread, streamed`, `one-shot`.
fn describe_producer(p: &Producer) -> String {
    match p.threading {
        Threading::Jobs { job_size, .. } => format!("job mode (job {} KiB)", job_size >> 10),
        Threading::Streaming => "single thread, streamed".into(),
        Threading::Single => "one-shot".into(),
    }
}

/// This library's libzstd version, as text.
pub fn version() -> String {
    let v = zc::encoder_version();
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// Human-readable parameters (`level 19, job mode, checksum`).
pub fn describe(p: &ZstdParams) -> String {
    let mut s = format!("level {}", p.level);
    for (flag, name) in [
        (FLAG_JOBS, "job mode"),
        (FLAG_CHECKSUM, "checksum"),
        (FLAG_LONG, "long"),
    ] {
        if p.has(flag) {
            s.push_str(", ");
            s.push_str(name);
        }
    }
    if !p.has(FLAG_PLEDGED) {
        s.push_str(", size unknown");
    }
    if p.window_log != 0 {
        s.push_str(&format!(", window 2^{}", p.window_log));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn content(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| ((i / 7) ^ (i >> 11)).wrapping_mul(2_654_435_761) as u8 & 0x3f)
            .collect()
    }

    fn frame(content: &[u8], p: ZstdParams) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = zc::ZstdCompressReader::new(content, content.len() as u64, p, 1, 1 << 40)
            .unwrap()
            .take(1 << 40);
        let _ = r.read_to_end(&mut out);
        out
    }

    #[test]
    fn the_search_finds_what_made_the_frame() {
        let data = content(900_000);
        for p in [
            ZstdParams {
                level: 19,
                flags: FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
                window_log: 0,
                job_size: 0,
            },
            ZstdParams {
                level: 7,
                flags: 0,
                window_log: 0,
                job_size: 0,
            },
            ZstdParams {
                // `zstd --long=24` from a pipe.
                level: 3,
                flags: FLAG_CHECKSUM | FLAG_LONG,
                window_log: 24,
                job_size: 0,
            },
        ] {
            let f = frame(&data, p);
            assert_eq!(decode(&f).unwrap(), data);
            let Search::Found(found) = find_params(&data, &f) else {
                panic!("{p:?} not found");
            };
            // Parameters making the same bytes are interchangeable.
            assert!(frame(&data, found) == f, "{p:?} → {found:?}");
        }
    }

    #[test]
    fn foreign_frames_are_reported() {
        let data = content(100_000);
        // A frame another encoder made: single segment, 4-byte content size, one raw block.
        let mut other = MAGIC.to_vec();
        other.push(0xa0);
        other.extend_from_slice(&(data.len() as u32).to_le_bytes());
        other.extend_from_slice(&(((data.len() as u32) << 3) | 1).to_le_bytes()[..3]);
        other.extend_from_slice(&data);
        assert_eq!(decode(&other).unwrap(), data);
        assert!(matches!(find_params(&data, &other), Search::NotFound(_)));
        other.push(0);
        assert!(decode(&other).is_err());
        assert!(decode(b"not zstd").is_err());
    }
}
