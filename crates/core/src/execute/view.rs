//! Random-access views: a sequence of byte ranges (in memory, in mapped temporary files, or in
//! input files read with `pread`) and zero runs, sliceable without copying.

use std::io::{self, Read};

use crate::codec::bspatch::OldFile;
use crate::io::{FileRange, SharedBytes};

/// One contiguous piece of a [`View`].
#[derive(Clone, Debug)]
pub enum Piece {
    /// Bytes of a mapped temporary file or buffer.
    Bytes(SharedBytes),
    /// Bytes of an input file, read with `pread` (never contiguous in memory).
    File(FileRange),
    /// A run of zero bytes.
    Zeros(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File(f) => f.len(),
            Piece::Zeros(n) => *n,
        }
    }
}

/// Bytes available at random: the concatenation of its pieces.
#[derive(Clone, Debug, Default)]
pub struct View {
    pieces: Vec<Piece>,
    len: u64,
}

impl View {
    /// A view of one mapped range.
    pub fn bytes(bytes: SharedBytes) -> Self {
        let mut view = View::default();
        view.push(Piece::Bytes(bytes));
        view
    }

    /// A view of a range of an input file.
    pub fn file(range: FileRange) -> Self {
        let mut view = View::default();
        view.push(Piece::File(range));
        view
    }

    /// `len` zero bytes.
    pub fn zeros(len: u64) -> Self {
        let mut view = View::default();
        view.push(Piece::Zeros(len));
        view
    }

    /// Number of pieces (for bounding hostile inputs).
    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a piece (empty pieces are dropped, adjacent zero runs merged).
    pub fn push(&mut self, piece: Piece) {
        let n = piece.len();
        if n == 0 {
            return;
        }
        self.len += n;
        if let (Some(Piece::Zeros(last)), Piece::Zeros(more)) = (self.pieces.last_mut(), &piece) {
            *last += more;
            return;
        }
        self.pieces.push(piece);
    }

    /// Appends all pieces of `other`.
    pub fn append(&mut self, other: &View) {
        for piece in &other.pieces {
            self.push(piece.clone());
        }
    }

    /// Sub-view `[offset, offset + len)`; the caller has checked the bounds.
    pub fn slice(&self, offset: u64, len: u64) -> View {
        let mut out = View::default();
        let mut skip = offset;
        let mut want = len;
        for piece in &self.pieces {
            if want == 0 {
                break;
            }
            let n = piece.len();
            if skip >= n {
                skip -= n;
                continue;
            }
            let take = (n - skip).min(want);
            out.push(match piece {
                Piece::Bytes(b) => Piece::Bytes(b.slice(skip, take).expect("within piece")),
                Piece::File(f) => Piece::File(f.slice(skip, take).expect("within piece")),
                Piece::Zeros(_) => Piece::Zeros(take),
            });
            want -= take;
            skip = 0;
        }
        out
    }

    /// The bytes in one piece, if the view is one range in memory or in a temporary file of
    /// ours (mapped now; an error if the map fails), or empty. Input-file ranges are never
    /// mapped: a consumer that needs them in one piece copies them into scratch space first.
    pub fn as_contiguous(&self) -> io::Result<Option<SharedBytes>> {
        match self.pieces.as_slice() {
            [] => Ok(Some(SharedBytes::from_vec(Vec::new()))),
            [Piece::Bytes(b)] => Ok(Some(b.clone())),
            [Piece::File(f)] => f.map_private().transpose(),
            _ => Ok(None),
        }
    }

    /// The bytes in one piece if the view is one range in memory (or empty): no input or
    /// temporary file is mapped for this.
    pub fn in_memory(&self) -> Option<SharedBytes> {
        match self.pieces.as_slice() {
            [] => Some(SharedBytes::from_vec(Vec::new())),
            [Piece::Bytes(b)] => Some(b.clone()),
            _ => None,
        }
    }

    /// The view read at random (file pieces with `pread`, so a view of gigabytes needs no
    /// mapping); `buffer` bytes of copy buffer are allocated (fallibly) for the file pieces.
    pub fn at_random(&self, buffer: usize) -> io::Result<RandomReader> {
        let mut starts = Vec::new();
        starts
            .try_reserve_exact(self.pieces.len())
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "a view's piece table"))?;
        let mut at = 0;
        for piece in &self.pieces {
            starts.push(at);
            at += piece.len();
        }
        Ok(RandomReader {
            view: self.clone(),
            starts,
            buf: crate::io::scratch::buffer(buffer.max(1), "reading a view at random")?,
        })
    }

    /// A streaming reader over the view.
    pub fn reader(&self) -> ViewReader {
        ViewReader {
            pieces: self.pieces.clone().into_iter().rev().collect(),
            pos: 0,
            released: 0,
        }
    }
}

/// A [`View`] read at random ([`View::at_random`]).
pub struct RandomReader {
    view: View,
    /// Offset of each piece in the view.
    starts: Vec<u64>,
    /// Copy buffer for file pieces.
    buf: Vec<u8>,
}

impl OldFile for RandomReader {
    fn len(&self) -> u64 {
        self.view.len()
    }

    fn add_to(&mut self, pos: u64, out: &mut [u8]) -> io::Result<()> {
        let add = |out: &mut [u8], old: &[u8]| {
            for (byte, o) in out.iter_mut().zip(old) {
                *byte = byte.wrapping_add(*o);
            }
        };
        // The piece holding `pos`: the last one starting at or before it.
        let mut index = self
            .starts
            .partition_point(|&start| start <= pos)
            .saturating_sub(1);
        let mut done = 0usize;
        while done < out.len() {
            let piece = self.view.pieces.get(index).ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of a view")
            })?;
            let skip = pos + done as u64 - self.starts[index];
            let n = ((out.len() - done) as u64).min(piece.len() - skip) as usize;
            let out = &mut out[done..done + n];
            match piece {
                // Within the piece, so `skip` fits a usize for a piece in memory.
                Piece::Bytes(b) => add(out, &b[skip as usize..skip as usize + n]),
                Piece::Zeros(_) => {} // adds nothing
                Piece::File(f) => {
                    let step = self.buf.len();
                    for (k, part) in out.chunks_mut(step).enumerate() {
                        let old = &mut self.buf[..part.len()];
                        f.read_exact_at(skip + (k * step) as u64, old)?;
                        add(part, old);
                    }
                }
            }
            done += n;
            index += 1;
        }
        Ok(())
    }
}

/// Bytes read between two releases of already-read mapped pages.
const RELEASE_STEP: u64 = 8 << 20;

/// Sequential reader of a [`View`]. Pages of mapped files it has read are released from the
/// process's resident set as it goes, so streaming a large file does not grow RSS.
pub struct ViewReader {
    /// Remaining pieces, last first.
    pieces: Vec<Piece>,
    /// Offset inside the current (last) piece.
    pos: u64,
    /// Offset inside the current piece up to which pages were released.
    released: u64,
}

impl ViewReader {
    /// Releases the read part of the current piece once a full step (or, with `finished`, the
    /// rest) has been read. Small pieces too: a view of a chain can be thousands of small slices
    /// of one large mapped file (a file-system image), whose pages would otherwise stay
    /// resident for as long as anything maps that file. Re-reading released pages only costs
    /// minor faults (the page cache keeps them).
    fn release_read_pages(&mut self, finished: bool) {
        if let Some(Piece::Bytes(b)) = self.pieces.last() {
            let span = self.pos - self.released;
            if (finished || span >= RELEASE_STEP) && span > 0 {
                b.release(self.released, span);
                self.released = self.pos;
            }
        }
    }
}

impl Read for ViewReader {
    /// Fills as much of `buf` as the remaining pieces allow (a view made of many tiny pieces
    /// still moves in large reads).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(piece) = self.pieces.last() else {
                break;
            };
            let left = piece.len() - self.pos;
            let n = ((buf.len() - filled) as u64).min(left) as usize;
            let out = &mut buf[filled..filled + n];
            match piece {
                Piece::Bytes(b) => {
                    let start = self.pos as usize;
                    out.copy_from_slice(&b[start..start + n]);
                }
                Piece::File(f) => f.read_exact_at(self.pos, out)?,
                Piece::Zeros(_) => out.fill(0),
            }
            self.pos += n as u64;
            filled += n;
            // A piece is let go as soon as it is read to its end: a consumer that wants an
            // exact length never reads again after its last byte.
            if self.pos == piece.len() {
                self.release_read_pages(true);
                self.pieces.pop();
                self.pos = 0;
                self.released = 0;
            } else if self.pos - self.released >= RELEASE_STEP {
                self.release_read_pages(false);
            }
        }
        Ok(filled)
    }
}

impl Drop for ViewReader {
    /// Releases what was read of the current piece (a reader can be dropped before its end).
    fn drop(&mut self) {
        self.release_read_pages(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(view: &View) -> Vec<u8> {
        let mut out = Vec::new();
        view.reader().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn slices_across_pieces() {
        let mut v = View::bytes(SharedBytes::from_vec(b"abc".to_vec()));
        v.push(Piece::Zeros(2));
        v.push(Piece::Bytes(SharedBytes::from_vec(b"xyz".to_vec())));
        assert_eq!(v.len(), 8);
        assert_eq!(read_all(&v), b"abc\0\0xyz");
        assert_eq!(read_all(&v.slice(2, 5)), b"c\0\0xy");
        assert!(v.slice(5, 3).as_contiguous().unwrap().is_some());
        assert!(v.slice(2, 5).as_contiguous().unwrap().is_none());
    }

    /// Random reads add the right old bytes across bytes, zero and file pieces, with a copy
    /// buffer smaller than the reads.
    #[test]
    fn random_reads_cross_pieces() {
        use std::io::Write;
        let file_bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&file_bytes).unwrap();
        let range = FileRange::open(file.path()).unwrap();
        let mut v = View::bytes(SharedBytes::from_vec(b"abcdefgh".to_vec()));
        v.push(Piece::Zeros(300));
        v.push(Piece::File(range.slice(1000, 3000).unwrap()));
        v.push(Piece::Bytes(SharedBytes::from_vec(vec![9; 40])));
        let whole = read_all(&v);
        assert!(v.in_memory().is_none());
        let mut reader = v.at_random(7).unwrap();
        assert_eq!(reader.len(), whole.len() as u64);
        for (pos, len) in [
            (0, 8),
            (3, 400),
            (307, 2),
            (308, 3000),
            (1000, 2348),
            (0, 3348),
        ] {
            let mut out = vec![1u8; len];
            reader.add_to(pos as u64, &mut out).unwrap();
            let want: Vec<u8> = whole[pos..pos + len]
                .iter()
                .map(|b| b.wrapping_add(1))
                .collect();
            assert_eq!(out, want, "at {pos}+{len}");
        }
        // The file shrinks under the view: a clean error, not a panic.
        file.as_file().set_len(1500).unwrap();
        assert!(reader.add_to(308, &mut [0u8; 1000]).is_err());
    }

    /// Resident size in KiB of the mapping holding `address` (from `/proc/self/smaps`).
    fn resident_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split(' ').next().unwrap_or("");
            if let Some((from, to)) = range.split_once('-') {
                if let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                ) {
                    inside = (from..to).contains(&address);
                    continue;
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("Rss:") {
                    return kib.trim().trim_end_matches(" kB").parse().unwrap();
                }
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    /// Reading a view of many small slices of a mapped file leaves none of its pages resident,
    /// including the last piece (after which an exact-length consumer never reads again) and
    /// the pages a fault maps around the touched ones.
    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support file-backed memory maps")]
    fn read_pages_of_small_pieces_are_released() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..8 {
            file.write_all(&chunk).unwrap();
        }
        let map = SharedBytes::map_file(&file).unwrap();
        let mut view = View::default();
        for k in 0..32u64 {
            view.push(Piece::Bytes(
                map.slice(k * (256 << 10) + 100, 4096).unwrap(),
            ));
        }
        let mut reader = view.reader();
        let mut out = vec![0u8; view.len() as usize];
        reader.read_exact(&mut out).unwrap();
        assert_eq!(out[..8], chunk[100..108]);
        assert_eq!(resident_kib(map.as_ptr() as usize), 0);
    }
}
