//! The packed cookbook of extended revision 2 (`docs/EXTENDED-FORMAT.md`, "Revision 2"): the
//! recipe sets — exactly the bytes a standard v2 delta stores there — as one zstd frame.
//!
//! Most of a cookbook is items (length + SHA-256), and every ingredient repeats an item written
//! before it (a blob sliced hundreds of times, a chain of results made by earlier recipes), so
//! zstd keeps about a quarter of it: the corpus minor delta's 244,951 bytes of recipes pack into
//! 67 KB. On the wire: `u64 unpacked length`, `u64 packed length`, then the frame.
//!
//! Reading is bounded by what the delta really holds: the unpacked length may be at most
//! [`MAX_PACK_RATIO`] times the packed bytes present and at most [`MAX_UNPACKED`]; the frame
//! must be one zstd frame that declares that length, and unpacking decodes straight into one
//! buffer of that size (no window buffer), allocated fallibly (20301 when the budget cannot
//! cover it).

use crate::error::{code, Error, Result};
use crate::format::reader::Cursor;
use crate::io::SharedBytes;

/// Largest unpacked cookbook accepted: 64 MiB (≈ 500,000 recipes; the parsed recipes take
/// more memory than their bytes, so a larger one could not be applied on a device anyway).
pub const MAX_UNPACKED: u64 = 64 << 20;

/// Largest unpacked/packed ratio accepted. Real cookbooks pack 3–10×; the bound keeps a small
/// hostile frame from making the reader allocate and decode much more than the delta's size.
pub const MAX_PACK_RATIO: u64 = 64;

/// zstd level of the writer: the cookbook is small, so the slowest level costs little (the
/// corpus minor cookbook packs in ~0.1 s) and its bytes are fixed by the pinned libzstd.
pub const PACK_LEVEL: i32 = 19;

fn malformed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_COOKBOOK_MALFORMED,
        format!("Extended delta: packed recipe sets: {detail}"),
    )
}

/// Whether a cookbook of `unpacked_len` bytes packed into `packed_len` is within the reader's
/// bounds ([`MAX_PACK_RATIO`], [`MAX_UNPACKED`]).
pub fn within_bounds(unpacked_len: u64, packed_len: u64) -> bool {
    unpacked_len <= packed_len.saturating_mul(MAX_PACK_RATIO).min(MAX_UNPACKED)
}

/// Packs the cookbook bytes `plain` into the revision-2 section (lengths, then the frame), or
/// `None` when the result would be outside the reader's bounds (a cookbook of highly repetitive
/// recipes, or a huge one): the writer then stores it unpacked (revision 1). The frame carries
/// its content size and a content checksum, so a corrupted frame is refused.
pub fn pack(plain: &[u8]) -> Result<Option<Vec<u8>>> {
    let failed = |what: &str, c: usize| {
        Error::new(
            code::EXT_COOKBOOK_MALFORMED,
            format!(
                "packing the recipe sets: {what} failed: {}",
                zstd_safe::get_error_name(c)
            ),
        )
    };
    let mut cctx = zstd_safe::CCtx::try_create().ok_or_else(|| {
        Error::new(
            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
            "packing the recipe sets: ZSTD_createCCtx() failed",
        )
    })?;
    for p in [
        zstd_safe::CParameter::CompressionLevel(PACK_LEVEL),
        zstd_safe::CParameter::ChecksumFlag(true),
        zstd_safe::CParameter::ContentSizeFlag(true),
    ] {
        cctx.set_parameter(p)
            .map_err(|c| failed("ZSTD_CCtx_setParameter()", c))?;
    }
    let mut frame = Vec::with_capacity(zstd_safe::compress_bound(plain.len()));
    cctx.compress2(&mut frame, plain)
        .map_err(|c| failed("ZSTD_compress2()", c))?;
    if !within_bounds(plain.len() as u64, frame.len() as u64) {
        return Ok(None);
    }
    let mut section = Vec::with_capacity(16 + frame.len());
    section.extend_from_slice(&(plain.len() as u64).to_be_bytes());
    section.extend_from_slice(&(frame.len() as u64).to_be_bytes());
    section.extend_from_slice(&frame);
    Ok(Some(section))
}

/// Reads a revision-2 section at `cur` and returns the unpacked cookbook bytes.
pub fn unpack(cur: &mut Cursor) -> Result<SharedBytes> {
    let unpacked_len = cur.u64()?;
    let packed_len = cur.u64()?;
    let frame = cur.blob(packed_len)?;
    if !within_bounds(unpacked_len, packed_len) {
        return Err(malformed(format!(
            "{unpacked_len} bytes from {packed_len} packed exceeds the bound \
             (at most {MAX_PACK_RATIO}× the packed bytes and {MAX_UNPACKED} in all)"
        )));
    }
    if zstd_safe::find_frame_compressed_size(&frame) != Ok(frame.len()) {
        return Err(malformed(format!(
            "the {packed_len} packed bytes are not exactly one zstd frame"
        )));
    }
    match zstd_safe::get_frame_content_size(&frame) {
        Ok(Some(declared)) if declared == unpacked_len => {}
        Ok(declared) => {
            return Err(malformed(format!(
                "the frame declares {declared:?} bytes, the section {unpacked_len}"
            )))
        }
        Err(_) => return Err(malformed("the frame header is not valid")),
    }
    let mut plain = Vec::new();
    plain
        .try_reserve_exact(unpacked_len as usize)
        .map_err(|_| {
            Error::new(
                code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                format!("Not enough memory to unpack {unpacked_len} bytes of recipe sets"),
            )
        })?;
    let produced = zstd_safe::decompress(&mut plain, &frame).map_err(|c| {
        Error::new(
            if crate::codec::zstd::is_allocation_failure(c) {
                code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN
            } else {
                code::EXT_COOKBOOK_MALFORMED
            },
            format!(
                "Extended delta: packed recipe sets: ZSTD_decompress() failed: {}",
                zstd_safe::get_error_name(c)
            ),
        )
    })?;
    if produced as u64 != unpacked_len {
        return Err(malformed(format!(
            "the frame holds {produced} bytes, the section says {unpacked_len}"
        )));
    }
    Ok(SharedBytes::from_vec(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::reader::Endian;

    fn cursor(bytes: Vec<u8>) -> Cursor {
        Cursor::new(SharedBytes::from_vec(bytes), Endian::Big)
    }

    /// Cookbook-like bytes: a unique 44-byte item (length, algorithm, "digest") per record,
    /// then a 44-byte item every record repeats (a blob sliced again and again).
    fn cookbook() -> Vec<u8> {
        let mut x = 0x9E37_79B9u32;
        let mut out = Vec::new();
        for i in 0..1000u64 {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&32780u32.to_be_bytes());
            for _ in 0..32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                out.push(x as u8);
            }
            out.extend_from_slice(&[7u8; 44]);
        }
        out
    }

    #[test]
    fn round_trip_and_position() {
        let plain = cookbook();
        let mut section = pack(&plain).unwrap().unwrap();
        assert!(section.len() < plain.len() * 3 / 5, "{}", section.len());
        section.extend_from_slice(b"next");
        let mut cur = cursor(section);
        assert_eq!(&unpack(&mut cur).unwrap()[..], &plain[..]);
        assert_eq!(cur.bytes(4).unwrap(), b"next");
    }

    fn unpack_err(section: Vec<u8>) -> Error {
        unpack(&mut cursor(section)).unwrap_err()
    }

    #[test]
    fn lengths_that_lie_are_refused() {
        let plain = cookbook();
        let good = pack(&plain).unwrap().unwrap();
        let with_unpacked = |n: u64| {
            let mut s = good.clone();
            s[..8].copy_from_slice(&n.to_be_bytes());
            s
        };
        for n in [plain.len() as u64 - 1, plain.len() as u64 + 1, 0] {
            let e = unpack_err(with_unpacked(n));
            assert_eq!(e.code, code::EXT_COOKBOOK_MALFORMED, "{n}: {e}");
        }
        let e = unpack_err(with_unpacked(u64::MAX));
        assert!(e.message.contains("exceeds the bound"), "{e}");
        // Packed length past the end of the delta: the cursor's past-end error.
        let mut s = good.clone();
        s[8..16].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(unpack_err(s).code, 21200);
        // A second frame after the first, or a corrupt frame body.
        let mut two = good.clone();
        let frame = good[16..].to_vec();
        two.extend_from_slice(&frame);
        two[8..16].copy_from_slice(&(2 * frame.len() as u64).to_be_bytes());
        assert!(unpack_err(two).message.contains("exactly one zstd frame"));
        let mut corrupt = good.clone();
        let mid = 16 + frame.len() / 2;
        corrupt[mid] ^= 0xFF;
        corrupt[mid + 1] ^= 0x55;
        assert_eq!(unpack_err(corrupt).code, code::EXT_COOKBOOK_MALFORMED);
    }

    #[test]
    fn a_small_frame_cannot_claim_a_large_cookbook() {
        // 1 MiB of zeros packs into a few dozen bytes: far above the ratio bound, so the
        // writer does not pack it, and a section that claims it is refused unread.
        let zeros = vec![0u8; 1 << 20];
        assert!(pack(&zeros).unwrap().is_none());
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(zeros.len()));
        zstd_safe::compress(&mut frame, &zeros[..], 3).unwrap();
        let mut section = (zeros.len() as u64).to_be_bytes().to_vec();
        section.extend_from_slice(&(frame.len() as u64).to_be_bytes());
        section.extend_from_slice(&frame);
        let e = unpack_err(section);
        assert_eq!(e.code, code::EXT_COOKBOOK_MALFORMED);
        assert!(e.message.contains("exceeds the bound"), "{e}");
    }
}
