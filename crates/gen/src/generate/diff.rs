//! Delta candidates for one member: bsdiff (BSDIFF40/bzip2, applied by
//! `bspatch_decompression`) and zstd "patch-from" (basis as raw prefix, applied by
//! `zstd_decompression`), or plain zstd when there is no basis.

use std::io::Cursor;

use zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

use super::progress::Counter;
use crate::tool::error::{ToolError, ToolResult};

/// How a delta payload is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `bspatch_decompression([patch, basis])`.
    Bsdiff,
    /// `zstd_decompression([frame, basis])`, or `[frame]` without a basis.
    Zstd,
}

impl Method {
    /// Name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Method::Bsdiff => "bsdiff",
            Method::Zstd => "zstd",
        }
    }
}

/// Largest prefix window the applier accepts with a prefix (`ZSTD_d_windowLogMax = 28`).
pub const MAX_WINDOW_LOG_WITH_PREFIX: u32 = 28;
/// Largest window without a prefix (libzstd's default decoder limit).
pub const MAX_WINDOW_LOG_PLAIN: u32 = 27;

/// Tuning of the candidates.
#[derive(Clone, Copy, Debug)]
pub struct DiffSettings {
    /// zstd compression level (1–22).
    pub zstd_level: i32,
    /// Run bsdiff for segments and windows up to this size (bsdiff needs ~ 9× the window in
    /// memory).
    pub bsdiff_max: u64,
    /// Contents larger than 1.5× this are diffed in segments of this size (0 = never).
    pub segment_size: u64,
    /// Each segment's basis window extends this far on both sides of its aligned position.
    pub segment_margin: u64,
    /// qbsdiff's "small match" threshold (shorter exact matches are skipped).
    pub bsdiff_small_match: usize,
}

impl Default for DiffSettings {
    fn default() -> Self {
        DiffSettings {
            zstd_level: 12,
            bsdiff_max: 512 << 20,
            segment_size: 32 << 20,
            segment_margin: 8 << 20,
            bsdiff_small_match: 24,
        }
    }
}

fn bit_length(n: u64) -> u32 {
    64 - n.leading_zeros()
}

/// zstd frame of `target`, with `basis` as raw-content prefix when given: long-distance
/// matching, window covering basis + target (capped so the applier accepts it), pledged size
/// (content size in the header), no checksum. `progress` advances by input bytes consumed.
pub fn zstd_delta(
    target: &[u8],
    basis: Option<&[u8]>,
    level: i32,
    progress: &Counter,
) -> ToolResult<Vec<u8>> {
    let zerr = |what: &str, code: usize| {
        ToolError(format!("zstd {what}: {}", zstd_safe::get_error_name(code)))
    };
    let mut cctx = CCtx::create();
    let span = target.len() as u64 + basis.map_or(0, |b| b.len() as u64);
    let cap = if basis.is_some() {
        MAX_WINDOW_LOG_WITH_PREFIX
    } else {
        MAX_WINDOW_LOG_PLAIN
    };
    let window_log = bit_length(span).clamp(10, cap);
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(|c| zerr("level", c))?;
    cctx.set_parameter(CParameter::WindowLog(window_log))
        .map_err(|c| zerr("windowLog", c))?;
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(true))
        .map_err(|c| zerr("ldm", c))?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(|c| zerr("checksum", c))?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(|c| zerr("content size", c))?;
    cctx.set_pledged_src_size(Some(target.len() as u64))
        .map_err(|c| zerr("pledged size", c))?;
    if let Some(b) = basis {
        cctx.ref_prefix(b).map_err(|c| zerr("prefix", c))?;
    }
    let mut out: Vec<u8> = Vec::with_capacity(target.len() / 8 + 1024);
    const PIECE: usize = 1 << 20;
    let mut pos = 0;
    loop {
        let end = (pos + PIECE).min(target.len());
        let last = end == target.len();
        let mut input = InBuffer::around(&target[pos..end]);
        loop {
            out.reserve(1 << 20);
            let len = out.len();
            let mut output = OutBuffer::around_pos(&mut out, len);
            let directive = if last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_continue
            };
            let remaining = cctx
                .compress_stream2(&mut output, &mut input, directive)
                .map_err(|c| zerr("compress", c))?;
            let consumed_all = input.pos() == end - pos;
            if last {
                if remaining == 0 && consumed_all {
                    break;
                }
            } else if consumed_all {
                break;
            }
        }
        progress.add((end - pos) as u64);
        pos = end;
        if last {
            return Ok(out);
        }
    }
}

/// BSDIFF40 patch (bzip2 blocks) turning `basis` into `target`; single-threaded so that two
/// candidates can run side by side on two cores.
pub fn bsdiff_delta(
    target: &[u8],
    basis: &[u8],
    small_match: usize,
    progress: &Counter,
) -> ToolResult<Vec<u8>> {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(basis, target)
        .small_match(small_match)
        .parallel_scheme(qbsdiff::ParallelScheme::Never)
        .compression_level(9)
        .compare(Cursor::new(&mut patch))
        .map_err(|e| ToolError(format!("bsdiff: {e}")))?;
    progress.add(target.len() as u64);
    Ok(patch)
}

/// Applies a candidate in memory (used by tests and as a quick self-check).
pub fn apply_candidate(
    method: Method,
    payload: &[u8],
    basis: Option<&[u8]>,
) -> ToolResult<Vec<u8>> {
    match method {
        Method::Bsdiff => {
            let mut out = Vec::new();
            qbsdiff::Bspatch::new(payload)
                .and_then(|p| p.apply(basis.unwrap_or(&[]), Cursor::new(&mut out)))
                .map_err(|e| ToolError(format!("bspatch: {e}")))?;
            Ok(out)
        }
        Method::Zstd => {
            let mut d = zstd_safe::DCtx::create();
            d.set_parameter(zstd_safe::DParameter::WindowLogMax(
                MAX_WINDOW_LOG_WITH_PREFIX,
            ))
            .map_err(|c| ToolError(format!("zstd: {}", zstd_safe::get_error_name(c))))?;
            if let Some(b) = basis {
                d.ref_prefix(b)
                    .map_err(|c| ToolError(format!("zstd: {}", zstd_safe::get_error_name(c))))?;
            }
            let size = zstd_safe::get_frame_content_size(payload)
                .ok()
                .flatten()
                .ok_or_else(|| ToolError("zstd frame without content size".into()))?;
            let mut out: Vec<u8> = Vec::with_capacity(size as usize);
            let mut input = InBuffer::around(payload);
            while (out.len() as u64) < size {
                let len = out.len();
                let produced = {
                    let mut output = OutBuffer::around_pos(&mut out, len);
                    d.decompress_stream(&mut output, &mut input).map_err(|c| {
                        ToolError(format!("zstd: {}", zstd_safe::get_error_name(c)))
                    })?;
                    output.pos() > len
                };
                if !produced && input.pos() == payload.len() {
                    return Err(ToolError("zstd: truncated frame".into()));
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_round_trip() {
        let basis: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut target = basis.clone();
        target[1000..1100].fill(7);
        target.extend_from_slice(b"appended tail");
        let c = Counter::default();
        let z = zstd_delta(&target, Some(&basis), 19, &c).unwrap();
        assert!(z.len() < 2000, "{}", z.len());
        assert_eq!(
            apply_candidate(Method::Zstd, &z, Some(&basis)).unwrap(),
            target
        );
        let b = bsdiff_delta(&target, &basis, 12, &c).unwrap();
        assert_eq!(
            apply_candidate(Method::Bsdiff, &b, Some(&basis)).unwrap(),
            target
        );
        let plain = zstd_delta(&target, None, 3, &c).unwrap();
        assert_eq!(apply_candidate(Method::Zstd, &plain, None).unwrap(), target);
    }
}
