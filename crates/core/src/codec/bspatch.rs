//! Streaming BSDIFF40 application (`bspatch_decompression` recipe, docs/FORMAT.md §6.2).
//!
//! The new file is produced incrementally: control tuples are decoded on demand and the caller's
//! buffer is filled straight from the diff stream (plus old bytes) or the extra stream, so memory
//! is bounded by the three bzip2 decoders, whatever the patch claims. The old file is read at
//! random through [`OldFile`]: bytes in memory, or (in the applier) a file read with `pread`,
//! so an old file of gigabytes needs no mapping. Every failure of the patch is
//! `30900 diff_bspatch_failure` (upstream hangs or truncates instead); a failed read of the
//! old file keeps its own error.

use std::io::{self, Read};

use bzip2::{Decompress, Status};

use super::StickyFailure;
use crate::error::{code, Error, Result};
use crate::io::SharedBytes;

/// The patch magic.
pub const MAGIC: &[u8; 8] = b"BSDIFF40";

/// Size of the patch header (magic and three lengths).
const HEADER_LEN: usize = 32;

/// Control tuples with `x = y = 0` tolerated (in total) before the patch is declared corrupt:
/// they make no progress, and a bzip2 bomb of them must not spin for long. Every other tuple
/// produces at least one byte, so the work is bounded by `N + MAX_IDLE_TUPLES` tuples.
pub const MAX_IDLE_TUPLES: u32 = 1 << 16;

/// A `diff_bspatch_failure` error.
fn failure(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::DIFF_BSPATCH_FAILURE,
        format!("bspatch failed: {detail}"),
    )
}

/// Decodes bsdiff's 8-byte sign-magnitude little-endian integer (`offtin`).
pub fn offtin(bytes: [u8; 8]) -> i64 {
    let raw = u64::from_le_bytes(bytes);
    let magnitude = (raw & !(1u64 << 63)) as i64;
    if raw >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// The header of a BSDIFF40 patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchHeader {
    /// Length of the compressed control block.
    pub control_len: u64,
    /// Length of the compressed diff block.
    pub diff_len: u64,
    /// Length of the new file.
    pub new_len: u64,
}

impl PatchHeader {
    /// Parses and validates the header of `patch` (magic, non-negative lengths within the patch).
    pub fn parse(patch: &[u8]) -> Result<Self> {
        let header = patch
            .get(..HEADER_LEN)
            .ok_or_else(|| failure(format!("patch too short ({} bytes)", patch.len())))?;
        if &header[..8] != MAGIC {
            return Err(failure("bad magic (expected BSDIFF40)"));
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[8 * i..8 * i + 8]);
            offtin(b)
        };
        let (x, y, n) = (field(1), field(2), field(3));
        if x < 0 || y < 0 || n < 0 {
            return Err(failure(format!(
                "negative length in header (control {x}, diff {y}, new {n})"
            )));
        }
        let (x, y, n) = (x as u64, y as u64, n as u64);
        let body = (patch.len() - HEADER_LEN) as u64;
        if !matches!(x.checked_add(y), Some(xy) if xy <= body) {
            return Err(failure(format!(
                "control ({x}) and diff ({y}) blocks exceed the patch body ({body} bytes)"
            )));
        }
        Ok(PatchHeader {
            control_len: x,
            diff_len: y,
            new_len: n,
        })
    }
}

/// One bzip2 stream read from an in-memory block.
struct BzBlock {
    name: &'static str,
    data: SharedBytes,
    pos: usize,
    decoder: Decompress,
    ended: bool,
}

impl BzBlock {
    fn new(name: &'static str, data: SharedBytes) -> Self {
        BzBlock {
            name,
            data,
            pos: 0,
            decoder: Decompress::new(false),
            ended: false,
        }
    }

    /// Fills `out` completely from the stream, or fails (corrupt or ended/truncated stream).
    fn read_exact(&mut self, out: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if self.ended {
                return Err(failure(format!("{} stream ended early", self.name)));
            }
            let (in_before, out_before) = (self.decoder.total_in(), self.decoder.total_out());
            let status = self
                .decoder
                .decompress(&self.data[self.pos..], &mut out[filled..])
                .map_err(|e| failure(format!("{} stream: bzip2 error: {e}", self.name)))?;
            let consumed = (self.decoder.total_in() - in_before) as usize;
            let produced = (self.decoder.total_out() - out_before) as usize;
            self.pos += consumed;
            filled += produced;
            match status {
                Status::StreamEnd => self.ended = true,
                Status::Ok => {
                    if consumed == 0 && produced == 0 {
                        return Err(failure(format!("{} stream is truncated", self.name)));
                    }
                }
                other => {
                    return Err(failure(format!(
                        "{} stream: unexpected bzip2 status {other:?}",
                        self.name
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Output produced between two releases of the old file's resident pages.
const OLD_RELEASE_STEP: u64 = 4 << 20;

/// The old file of a patch, read at random.
pub trait OldFile: Send {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Whether the old file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (wrapping, bytewise) the old bytes at `[pos, pos + out.len())`, which lie within
    /// the old file, to `out`.
    fn add_to(&mut self, pos: u64, out: &mut [u8]) -> io::Result<()>;

    /// Tells the old file that the bytes read so far are not needed soon (a mapped one drops
    /// their pages from the resident set).
    fn release(&mut self) {}
}

impl OldFile for SharedBytes {
    fn len(&self) -> u64 {
        SharedBytes::len(self) as u64
    }

    fn add_to(&mut self, pos: u64, out: &mut [u8]) -> io::Result<()> {
        // Within the bytes (the caller's contract), so `pos` fits a usize.
        let start = pos as usize;
        let old = &self[start..start + out.len()];
        for (byte, o) in out.iter_mut().zip(old) {
            *byte = byte.wrapping_add(*o);
        }
        Ok(())
    }

    fn release(&mut self) {
        // `old` is often a slice of a large mapped file: drop the pages read so far from the
        // resident set (a no-op for heap buffers).
        SharedBytes::release(self, 0, SharedBytes::len(self) as u64);
    }
}

/// Streaming bspatch: yields the new file (exactly `output_len` bytes), then `Ok(0)`.
pub struct BspatchReader {
    old: Box<dyn OldFile>,
    control: BzBlock,
    diff: BzBlock,
    extra: BzBlock,
    new_len: u64,
    new_pos: u64,
    old_pos: i64,
    /// Diff bytes left in the current tuple.
    diff_left: u64,
    /// Extra bytes left in the current tuple.
    extra_left: u64,
    /// Seek of the current tuple, applied to `old_pos` once its diff bytes are done.
    seek: i64,
    idle_tuples: u32,
    failed: StickyFailure,
}

impl BspatchReader {
    /// Prepares applying `patch` to `old`; the patch must announce exactly `output_len` bytes.
    pub fn new(patch: SharedBytes, old: impl OldFile + 'static, output_len: u64) -> Result<Self> {
        let header = PatchHeader::parse(&patch)?;
        if header.new_len != output_len {
            return Err(failure(format!(
                "patch produces {} bytes, expected {output_len}",
                header.new_len
            )));
        }
        let body = (patch.len() - HEADER_LEN) as u64;
        let block = |offset: u64, len: u64| {
            patch
                .slice(HEADER_LEN as u64 + offset, len)
                .ok_or_else(|| failure("block outside the patch"))
        };
        let (x, y) = (header.control_len, header.diff_len);
        Ok(BspatchReader {
            old: Box::new(old),
            control: BzBlock::new("control", block(0, x)?),
            diff: BzBlock::new("diff", block(x, y)?),
            extra: BzBlock::new("extra", block(x + y, body - x - y)?),
            new_len: header.new_len,
            new_pos: 0,
            old_pos: 0,
            diff_left: 0,
            extra_left: 0,
            seek: 0,
            idle_tuples: 0,
            failed: StickyFailure::default(),
        })
    }

    /// Reads and validates the next control tuple.
    fn next_tuple(&mut self) -> Result<()> {
        let mut raw = [0u8; 24];
        self.control.read_exact(&mut raw)?;
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[8 * i..8 * i + 8]);
            offtin(b)
        };
        let (x, y, z) = (field(0), field(1), field(2));
        if x < 0 || y < 0 {
            return Err(failure(format!(
                "negative length in control tuple ({x}, {y})"
            )));
        }
        let (x, y) = (x as u64, y as u64);
        let left = self.new_len - self.new_pos;
        if x > left || y > left - x {
            return Err(failure(format!(
                "control tuple ({x}, {y}) at new offset {} overruns the new size {}",
                self.new_pos, self.new_len
            )));
        }
        if x == 0 && y == 0 {
            self.idle_tuples += 1;
            if self.idle_tuples > MAX_IDLE_TUPLES {
                return Err(failure("too many control tuples that produce nothing"));
            }
        }
        self.diff_left = x;
        self.extra_left = y;
        self.seek = z;
        if x == 0 {
            self.apply_seek()?;
        }
        Ok(())
    }

    /// `old_pos += seek`, checked.
    fn apply_seek(&mut self) -> Result<()> {
        self.old_pos = self
            .old_pos
            .checked_add(self.seek)
            .ok_or_else(|| failure("old offset overflows"))?;
        self.seek = 0;
        Ok(())
    }

    /// Fills `out` with diff bytes added to the old bytes at `old_pos`.
    fn copy_diff(&mut self, out: &mut [u8]) -> Result<()> {
        self.diff.read_exact(out)?;
        let n = out.len() as i64; // buffers are far below i64::MAX
                                  // Old files are far below i64::MAX bytes too (file sizes are `off_t`).
        let old_len = i64::try_from(self.old.len()).unwrap_or(i64::MAX);
        // Overlap of [old_pos, old_pos + n) with [0, old_len).
        let start = self.old_pos.clamp(0, old_len);
        let end = self.old_pos.saturating_add(n).clamp(0, old_len);
        if start < end {
            // Both within `out` (at most n bytes from old_pos).
            let skip = (start - self.old_pos) as usize;
            let take = (end - start) as usize;
            self.old
                .add_to(start as u64, &mut out[skip..skip + take])
                .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
        }
        self.old_pos = self
            .old_pos
            .checked_add(n)
            .ok_or_else(|| failure("old offset overflows"))?;
        Ok(())
    }

    /// Fills `buf` as far as possible; `filled` tells how much is valid, also on failure.
    fn fill(&mut self, buf: &mut [u8], filled: &mut usize) -> Result<()> {
        while *filled < buf.len() && self.new_pos < self.new_len {
            let filled_now = *filled;
            let room = (buf.len() - filled_now) as u64;
            let end = |n: u64| filled_now + n as usize;
            if self.diff_left > 0 {
                let n = self.diff_left.min(room);
                self.copy_diff(&mut buf[filled_now..end(n)])?;
                self.diff_left -= n;
                self.new_pos += n;
                *filled = end(n);
                if self.diff_left == 0 {
                    self.apply_seek()?;
                }
            } else if self.extra_left > 0 {
                let n = self.extra_left.min(room);
                self.extra.read_exact(&mut buf[filled_now..end(n)])?;
                self.extra_left -= n;
                self.new_pos += n;
                *filled = end(n);
            } else {
                self.next_tuple()?;
            }
        }
        Ok(())
    }
}

impl Read for BspatchReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed.check()?;
        let mut filled = 0;
        let before = self.new_pos;
        let outcome = self.fill(buf, &mut filled);
        if self.new_pos / OLD_RELEASE_STEP != before / OLD_RELEASE_STEP {
            self.old.release();
        }
        // What was produced before a failure goes out first; the error comes next time.
        self.failed.deliver(filled, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{err_code, read_all, vector};
    use std::io::Write;

    fn patch_at_magic(case: &str) -> Vec<u8> {
        let delta = vector(case, "delta");
        let at = delta.windows(8).position(|w| w == MAGIC).expect("magic");
        delta[at..].to_vec()
    }

    fn apply(patch: &[u8], old: &[u8], len: u64, piece: usize) -> io::Result<Vec<u8>> {
        let patch = SharedBytes::from_vec(patch.to_vec());
        let old = SharedBytes::from_vec(old.to_vec());
        read_all(
            BspatchReader::new(patch, old, len).map_err(Error::into_io)?,
            piece,
        )
    }

    fn bz(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn enc(v: i64) -> [u8; 8] {
        let mut raw = v.unsigned_abs().to_le_bytes();
        if v < 0 {
            raw[7] |= 0x80;
        }
        raw
    }

    /// Builds a patch from raw control tuples, diff and extra bytes.
    fn build(tuples: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], new_len: i64) -> Vec<u8> {
        let control: Vec<u8> = tuples
            .iter()
            .flat_map(|&(x, y, z)| [enc(x), enc(y), enc(z)].concat())
            .collect();
        let (c, d, e) = (bz(&control), bz(diff), bz(extra));
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&enc(c.len() as i64));
        p.extend_from_slice(&enc(d.len() as i64));
        p.extend_from_slice(&enc(new_len));
        p.extend(c);
        p.extend(d);
        p.extend(e);
        p
    }

    fn qbsdiff(old: &[u8], new: &[u8]) -> Vec<u8> {
        let mut patch = Vec::new();
        qbsdiff::Bsdiff::new(old, new).compare(&mut patch).unwrap();
        patch
    }

    #[test]
    fn offtin_is_sign_magnitude() {
        assert_eq!(offtin([5, 0, 0, 0, 0, 0, 0, 0]), 5);
        assert_eq!(offtin([5, 0, 0, 0, 0, 0, 0, 0x80]), -5);
        assert_eq!(offtin([0, 0, 0, 0, 0, 0, 0, 0x80]), 0);
        assert_eq!(offtin([0xff; 8]), -i64::MAX);
        assert_eq!(offtin(enc(-1234567)), -1234567);
    }

    #[test]
    fn golden_vector() {
        // Patch (912 bytes) in the inline assets; old = source[50000..150000]; the patch output
        // is target[64..64 + 100549] (a chain: 64 bytes, bspatch, 1000 bytes).
        let case = "bspatch_slice_dictionary";
        let patch = patch_at_magic(case);
        let source = vector(case, "source");
        let target = vector(case, "target");
        let expected = &target[64..64 + 100_549];
        for (piece, p) in [
            (1usize, &patch[..912]),
            (4096, &patch[..]),
            (1 << 20, &patch[..912]),
        ] {
            let got = apply(p, &source[50_000..150_000], 100_549, piece).unwrap();
            assert!(got == expected, "piece {piece}: output differs");
        }
        // Wrong announced length.
        let e = apply(&patch[..912], &source[50_000..150_000], 100_548, 64).unwrap_err();
        assert_eq!(err_code(e), code::DIFF_BSPATCH_FAILURE);
        let e = apply(&patch[..912], &source[50_000..150_000], 100_550, 64).unwrap_err();
        assert_eq!(err_code(e), code::DIFF_BSPATCH_FAILURE);
    }

    #[test]
    fn golden_corrupt_payload() {
        let case = "malformed_corrupt_bsdiff_payload";
        let patch = patch_at_magic(case);
        let source = vector(case, "source");
        let e = apply(&patch[..1061], &source[..100_000], 99_655, 4096).unwrap_err();
        let e = Error::from_io(e, 0);
        assert_eq!(e.code, code::DIFF_BSPATCH_FAILURE);
        assert!(e.message.contains("control"), "{}", e.message);
    }

    fn lcg(seed: &mut u64) -> u8 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 56) as u8
    }

    #[test]
    fn qbsdiff_round_trips() {
        let mut seed = 7u64;
        let random: Vec<u8> = (0..50_000).map(|_| lcg(&mut seed)).collect();
        let text: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes())
            .collect();
        let mut edited = text.clone();
        edited.drain(1000..1500);
        edited.splice(20_000..20_000, b"inserted!".iter().copied());
        for b in edited.iter_mut().step_by(997) {
            *b ^= 0x20;
        }
        let mut shuffled = random[25_000..].to_vec();
        shuffled.extend_from_slice(&random[..25_000]);
        let cases: [(&[u8], &[u8]); 6] = [
            (&random, &shuffled),
            (&text, &edited),
            (&edited, &text),
            (b"", &text[..5000]),
            (&text, b"x"),
            (&random[..10], &random[5..]),
        ];
        for (i, (old, new)) in cases.into_iter().enumerate() {
            let patch = qbsdiff(old, new);
            for piece in [1usize, 1000, 1 << 20] {
                if piece == 1 && new.len() > 10_000 {
                    continue;
                }
                let got = apply(&patch, old, new.len() as u64, piece).unwrap();
                assert!(got == new, "case {i} piece {piece}: output differs");
            }
        }
    }

    #[test]
    fn truncated_and_corrupted_patches_fail() {
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("row {i};").into_bytes())
            .collect();
        let mut new = text.clone();
        new[500..600].fill(b'#');
        new.extend_from_slice(b"tail tail tail");
        let patch = qbsdiff(&text, &new);
        let n = new.len() as u64;
        for cut in [0, 8, 31, 32, 40, patch.len() / 2, patch.len() - 20] {
            let Err(e) = apply(&patch[..cut], &text, n, 4096) else {
                panic!("cut {cut}: must fail")
            };
            assert_eq!(err_code(e), code::DIFF_BSPATCH_FAILURE, "cut {cut}");
        }
        // Like upstream, the end-of-stream trailer of a block is only read if data is missing,
        // so losing the very last byte of the patch may go unnoticed (the data is complete).
        match apply(&patch[..patch.len() - 1], &text, n, 4096) {
            Ok(out) => assert!(out == new),
            Err(e) => assert_eq!(err_code(e), code::DIFF_BSPATCH_FAILURE),
        }
        let mut bad_magic = patch.clone();
        bad_magic[7] = b'1';
        assert_eq!(
            err_code(apply(&bad_magic, &text, n, 4096).unwrap_err()),
            30900
        );
        // Flip bytes all over the patch: must fail with 30900 or produce n bytes, never panic.
        let mut seed = 3u64;
        for _ in 0..300 {
            let mut p = patch.clone();
            let at =
                32 + (lcg(&mut seed) as usize * 256 + lcg(&mut seed) as usize) % (p.len() - 32);
            p[at] ^= lcg(&mut seed) | 1;
            match apply(&p, &text, n, 777) {
                Ok(out) => assert_eq!(out.len() as u64, n, "flip at {at}"),
                Err(e) => assert_eq!(err_code(e), code::DIFF_BSPATCH_FAILURE),
            }
        }
    }

    #[test]
    fn crafted_control_data() {
        let old = b"0123456789";
        // Negative seek, reads before and after old (contribute nothing), extra bytes.
        let p = build(
            &[(4, 2, -6), (4, 0, 100), (2, 1, 0)],
            &[1, 1, 1, 1, 1, 1, 1, 1, 5, 5],
            b"abc",
            13,
        );
        let got = apply(&p, old, 13, 3).unwrap();
        // tuple 1: new[0..4] = diff + old[0..4]; extra "ab"; old_pos = 4 - 6 = -2.
        // tuple 2: old[-2..2] → 1,1,'0'+1,'1'+1; old_pos = 2 + 100.
        // tuple 3: old[102..104] out of range → 5,5; extra "c".
        assert_eq!(got, b"1234ab\x01\x0112\x05\x05c");

        let fail = |p: Vec<u8>, len: u64| err_code(apply(&p, old, len, 64).unwrap_err());
        // Negative x / y in a tuple.
        assert_eq!(fail(build(&[(-1, 0, 0)], &[], b"", 1), 1), 30900);
        assert_eq!(fail(build(&[(0, -1, 0)], &[], b"", 1), 1), 30900);
        // Tuple overruns N (x, then y after x).
        assert_eq!(fail(build(&[(2, 0, 0)], &[0, 0], b"", 1), 1), 30900);
        assert_eq!(fail(build(&[(1, 1, 0)], &[0], b"x", 1), 1), 30900);
        // Control stream ends before N bytes.
        assert_eq!(fail(build(&[(1, 0, 0)], &[0], b"", 2), 2), 30900);
        // Diff / extra streams shorter than the tuples say.
        assert_eq!(fail(build(&[(2, 0, 0)], &[0], b"", 2), 2), 30900);
        assert_eq!(fail(build(&[(0, 2, 0)], &[], b"x", 2), 2), 30900);
        // Negative lengths in the header.
        let mut p = build(&[(1, 0, 0)], &[0], b"", 1);
        p[31] |= 0x80;
        assert_eq!(fail(p, 1), 30900);
        // Seek overflow.
        assert_eq!(
            fail(
                build(&[(0, 1, i64::MAX), (0, 1, i64::MAX)], &[], b"xy", 2),
                2
            ),
            30900
        );
        // Idle tuples: bounded in total (even when interleaved with productive ones), then an
        // error instead of spinning.
        let idle = vec![(0, 0, 1); MAX_IDLE_TUPLES as usize + 1];
        assert_eq!(fail(build(&idle, &[], b"", 1), 1), 30900);
        let mut mixed = vec![(0, 0, 1); MAX_IDLE_TUPLES as usize / 2];
        mixed.push((0, 1, 0));
        mixed.extend(vec![(0, 0, 1); MAX_IDLE_TUPLES as usize / 2 + 1]);
        mixed.push((0, 1, 0));
        assert_eq!(fail(build(&mixed, &[], b"xy", 2), 2), 30900);
        // A few idle tuples are fine.
        let p = build(&[(0, 0, 1), (0, 0, 1), (1, 0, 0)], &[0], b"", 1);
        assert_eq!(apply(&p, old, 1, 8).unwrap(), b"2");
    }

    #[test]
    fn sticky_error_and_send() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        let p = build(&[(1, 0, 0)], &[0], b"", 2);
        let mut r = BspatchReader::new(
            SharedBytes::from_vec(p),
            SharedBytes::from_vec(b"ab".to_vec()),
            2,
        )
        .unwrap();
        assert_send(&r);
        let mut buf = [0u8; 8];
        // The byte produced before the failure is delivered, then the error (repeatedly).
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'a');
        assert_eq!(r.read(&mut buf).unwrap_err().kind(), io::ErrorKind::Other);
        assert_eq!(err_code(r.read(&mut buf).unwrap_err()), 30900);
        assert_eq!(r.read(&mut []).map_err(err_code).unwrap_err(), 30900);
    }
}
