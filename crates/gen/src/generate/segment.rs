//! Splitting large contents (file-system images) into segments diffed independently: each
//! segment gets the best of bsdiff and zstd against a window of the basis around its aligned
//! position. This bounds memory, balances both cores, lets code-heavy and data-heavy regions
//! each use the method that suits them, and keeps every zstd prefix well inside the window the
//! applier accepts.

use std::collections::HashMap;

use super::diff::DiffSettings;

/// Block size used to align target segments with the basis (ext2/3/4 images use 4 KiB blocks).
pub const ALIGN_BLOCK: usize = 4096;

/// A piece of the content and the basis window it is diffed against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the content.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// Basis window `(offset, length)`, none without a basis.
    pub window: Option<(u64, u64)>,
    /// The segment is all zeros (made by `all_zeros`, no delta).
    pub zeros: bool,
}

fn block_hash(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in b.chunks_exact(8) {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

/// Segments of `content` (one segment spanning everything when it is small or when
/// segmenting is disabled).
pub fn split(content: &[u8], basis: Option<&[u8]>, s: &DiffSettings) -> Vec<Segment> {
    let len = content.len() as u64;
    let whole = |zeros| {
        vec![Segment {
            start: 0,
            len,
            window: basis.map(|b| (0, b.len() as u64)),
            zeros,
        }]
    };
    let seg = s.segment_size;
    if seg == 0 || len <= seg + seg / 2 {
        return whole(false);
    }
    // Index the basis' aligned blocks (first occurrence, zero blocks skipped).
    let mut index: HashMap<u64, u32> = HashMap::new();
    if let Some(b) = basis {
        index.reserve(b.len() / ALIGN_BLOCK);
        for (i, blk) in b.chunks_exact(ALIGN_BLOCK).enumerate() {
            if blk.iter().all(|&x| x == 0) {
                continue;
            }
            index.entry(block_hash(blk)).or_insert(i as u32);
        }
    }
    let mut out = Vec::new();
    let mut shift: i64 = 0; // basis offset - content offset, carried over when nothing matches
    let mut start = 0u64;
    while start < len {
        let mut end = (start + seg).min(len);
        if len - end < seg / 2 {
            end = len; // no tiny last segment
        }
        let piece = &content[start as usize..end as usize];
        let zeros = piece.iter().all(|&x| x == 0);
        let window = basis.map(|b| {
            let mut votes: HashMap<i64, u32> = HashMap::new();
            let first_block = start as usize / ALIGN_BLOCK;
            for (k, blk) in piece.chunks_exact(ALIGN_BLOCK).enumerate() {
                if let Some(&src) = index.get(&block_hash(blk)) {
                    if blk.iter().any(|&x| x != 0) {
                        let d = src as i64 - (first_block + k) as i64;
                        *votes.entry(d).or_default() += 1;
                    }
                }
            }
            if let Some((&d, _)) = votes.iter().max_by_key(|(d, n)| (**n, -(d.abs()))) {
                shift = d * ALIGN_BLOCK as i64;
            }
            let blen = b.len() as i64;
            let lo = (start as i64 + shift - s.segment_margin as i64).clamp(0, blen);
            let hi = (end as i64 + shift + s.segment_margin as i64).clamp(0, blen);
            if hi - lo < (end - start) as i64 / 4 {
                // Window clipped away (content beyond the basis): use the basis' tail.
                let lo = (blen - (end - start) as i64 - s.segment_margin as i64).max(0);
                (lo as u64, (blen - lo) as u64)
            } else {
                (lo as u64, (hi - lo) as u64)
            }
        });
        out.push(Segment {
            start,
            len: end - start,
            window,
            zeros,
        });
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_a_shift() {
        let s = DiffSettings {
            segment_size: 64 * 1024,
            segment_margin: 8 * 1024,
            ..DiffSettings::default()
        };
        let basis: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        // Target = 40 KiB of new data, then the basis (shifted by +40 KiB), then zeros.
        let mut content = vec![1u8; 40 * 1024];
        content.extend_from_slice(&basis);
        content.resize(content.len() + 200_000, 0);
        let segs = split(&content, Some(&basis), &s);
        assert_eq!(
            segs.iter().map(|x| x.len).sum::<u64>(),
            content.len() as u64
        );
        // A segment in the middle is aligned 40 KiB back in the basis.
        let mid = &segs[3];
        let (off, len) = mid.window.unwrap();
        assert_eq!(off, mid.start - 40 * 1024 - 8 * 1024);
        assert_eq!(len, mid.len + 16 * 1024);
        assert!(segs.last().unwrap().zeros);
        // Small contents stay whole.
        assert_eq!(split(&basis[..1000], Some(&basis), &s).len(), 1);
    }
}
