use std::fs::File;
use std::io;
use std::ops::Deref;
use std::sync::Arc;

use super::scratch::Charge;

/// Something kept alive as long as a mapping (a file's scratch charge).
type Keep = Arc<dyn std::any::Any + Send + Sync>;

/// Granule of [`SharedBytes::release`]: the most one page fault of a file mapping maps at once.
/// Linux maps the cached pages of an aligned 64 KiB block around the faulting page
/// (`fault_around_bytes`), or the whole page-cache folio holding it, which on file systems with
/// large folios (ext4 since Linux 6.16, XFS) is up to a PMD, 2 MiB on x86-64 (1 MiB for a file
/// written in 1 MiB chunks).
const FAULT_AROUND: usize = 2 << 20;

enum Backing {
    /// A read-only map, and what must live as long as it (the scratch charge of the temporary
    /// file behind it, if any; held only to be released when the bytes are dropped).
    Mapped(memmap2::Mmap, #[allow(dead_code)] Option<Keep>),
    /// A heap buffer, and its scratch charge (if any; held only to be released when the bytes
    /// are dropped).
    Heap(Vec<u8>, #[allow(dead_code)] Option<Charge>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map, _) => map,
            Backing::Heap(vec, _) => vec,
        }
    }
}

/// A cheaply clonable, thread-safe view of immutable bytes: a read-only memory map of a file, or a
/// heap buffer. Slicing never copies.
#[derive(Clone)]
pub struct SharedBytes {
    backing: Arc<Backing>,
    start: usize,
    len: usize,
}

impl SharedBytes {
    /// Maps `file` read-only. The caller must not modify the file while the map is alive; the
    /// applier only maps temporary files it owns (inputs are read with `pread`, see
    /// [`super::FileRange`], because another process could truncate them, which would turn a
    /// read of the map into `SIGBUS`).
    pub fn map_file(file: &File) -> io::Result<Self> {
        Self::map_charged(file, None)
    }

    /// [`SharedBytes::map_file`] keeping `charge` (the scratch space of the file) until the last
    /// view of the map is dropped.
    pub fn map_charged(file: &File, charge: Option<Charge>) -> io::Result<Self> {
        let keep = charge.map(|c| Arc::new(c) as Keep);
        Self::map_with(file, keep)
    }

    fn map_with(file: &File, keep: Option<Keep>) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Self::map_range_with(file, 0, len, keep)
    }

    /// Maps only `[offset, offset + len)` of `file` read-only (a window of it: the address
    /// space taken is the range's, rounded out to whole pages, not the file's), keeping `keep`
    /// alive until the last view of the map is dropped. The range must lie within the file.
    /// A range that cannot be mapped in one piece on this target (a 32-bit process has 4 GiB
    /// of address space at most) is an error, never a truncated map.
    pub fn map_range_keeping(file: &File, offset: u64, len: u64, keep: Keep) -> io::Result<Self> {
        let size = file.metadata()?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("bytes {offset}+{len} lie beyond the end of a {size}-byte file"),
            ));
        }
        Self::map_range_with(file, offset, len, Some(keep))
    }

    fn map_range_with(file: &File, offset: u64, len: u64, keep: Option<Keep>) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{len} bytes cannot be mapped in one piece on this target"),
                )
            })?;
        // SAFETY: the mapping is read-only. The applier maps only unlinked temporary files that
        // it wrote itself (with `write`, into blocks allocated before), which no other process
        // can name, truncate or modify; the generator also maps its inputs, documented as
        // not modified while it runs. memmap2 aligns the (64-bit) file offset down to a page
        // itself and maps with `mmap64`.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(file)?
        };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(SharedBytes {
            backing: Arc::new(Backing::Mapped(map, keep)),
            start: 0,
            len,
        })
    }

    /// Wraps an owned buffer.
    pub fn from_vec(vec: Vec<u8>) -> Self {
        Self::from_vec_charged(vec, None)
    }

    /// Wraps an owned buffer, keeping `charge` (its share of the memory budget) until the last
    /// view of it is dropped.
    pub fn from_vec_charged(vec: Vec<u8>, charge: Option<Charge>) -> Self {
        let len = vec.len();
        SharedBytes {
            backing: Arc::new(Backing::Heap(vec, charge)),
            start: 0,
            len,
        }
    }

    /// Number of bytes in this view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tells the kernel that this process no longer needs the pages of `[offset, offset + len)` of
    /// this view resident. For a mapped file this only drops them from the process's resident
    /// set (the page cache keeps them; a later access faults them back in), which keeps peak RSS
    /// bounded while streaming through large inputs. A no-op for heap buffers.
    ///
    /// The range is widened to whole aligned 2 MiB blocks of the address space (within the
    /// mapping): a page fault maps the cached pages around the faulting one too (a 64 KiB
    /// block, or the whole page-cache folio of up to 2 MiB), so reads of many small ranges leave
    /// far more pages resident than they touch. Pages next to the range may thus be released
    /// as well; they are faulted back in when used.
    pub fn release(&self, offset: u64, len: u64) {
        let Backing::Mapped(map, _) = &*self.backing else {
            return;
        };
        let Some(end) = offset.checked_add(len) else {
            return;
        };
        if end > self.len as u64 || len == 0 {
            return;
        }
        let base = map.as_ptr() as usize;
        let first = base + self.start + offset as usize;
        let last = base + self.start + end as usize;
        let from = (first & !(FAULT_AROUND - 1)).max(base);
        let to = last
            .checked_next_multiple_of(FAULT_AROUND)
            .unwrap_or(last)
            .min(base + map.len());
        // SAFETY: the mapping is file-backed and read-only: MADV_DONTNEED discards no data, it
        // only unmaps pages that are transparently re-read from the page cache on the next access.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from - base, to - from)
        };
    }

    /// Sub-view `[offset, offset + len)`, or `None` if it does not fit (overflow-safe).
    pub fn slice(&self, offset: u64, len: u64) -> Option<SharedBytes> {
        let end = offset.checked_add(len)?;
        if end > self.len as u64 {
            return None;
        }
        Some(SharedBytes {
            backing: Arc::clone(&self.backing),
            start: self.start + offset as usize,
            len: len as usize,
        })
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.backing.bytes()[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_are_bounds_checked() {
        let b = SharedBytes::from_vec(b"hello world".to_vec());
        assert_eq!(&*b.slice(6, 5).unwrap(), b"world");
        assert!(b.slice(6, 6).is_none());
        assert!(b.slice(u64::MAX, 2).is_none());
        let inner = b.slice(2, 5).unwrap();
        assert_eq!(&*inner.slice(1, 2).unwrap(), b"lo");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support file-backed memory maps")]
    fn maps_files_including_empty_ones() {
        let mut f = tempfile::tempfile().unwrap();
        assert!(SharedBytes::map_file(&f).unwrap().is_empty());
        f.write_all(b"abc").unwrap();
        assert_eq!(&*SharedBytes::map_file(&f).unwrap(), b"abc");
    }
}
