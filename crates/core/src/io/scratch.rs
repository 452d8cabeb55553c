//! Where an apply keeps its intermediates: on disk (preallocated temporary files) or in memory,
//! within limits an integrator can set, and never through a mapping of blocks the file system
//! has not allocated.
//!
//! An apply needs scratch space for the items it materializes (a zstd prefix, the old file of a
//! bsdiff patch, anything read twice) and for the output window of large zstd frames. Each
//! request goes to the preferred place if it fits there, else to the other one, else the apply
//! fails with [`code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN`] and a message that names what was
//! needed and what was available:
//!
//! * **disk**: an unlinked temporary file in the scratch directory whose blocks are allocated
//!   up front (`fallocate`) before anything is written or mapped, so a full file system, a quota
//!   or a file system without the space gives an error there instead of a `SIGBUS` when a
//!   mapped page is first written or read;
//! * **memory**: a heap buffer reserved with a fallible allocation, counted against a memory
//!   budget (what the address-space limit, the cgroup memory limit and the kernel's
//!   `MemAvailable` leave, less a reserve for the apply's fixed working set).
//!
//! The configuration is read from the environment when an apply starts (see [`ScratchConfig`]).

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{code, Error, Result};

// Large-file variants of the calls that take file offsets: with glibc on 32-bit targets
// (armv7), `off_t` and `fallocate` are 32-bit and cannot describe files of 2 GiB or more;
// the `*64` functions take 64-bit offsets on every target (on 64-bit ones they are aliases).
// `statvfs` likewise fails with EOVERFLOW there when a file system has 2^32 blocks or more.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use libc::{fallocate, off_t, posix_fallocate, statvfs, statvfs as StatVfs};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::{
    fallocate64 as fallocate, off64_t as off_t, posix_fallocate64 as posix_fallocate,
    statvfs64 as statvfs, statvfs64 as StatVfs,
};

/// Environment variable: directory for temporary files (default: the target's directory).
pub const ENV_DIR: &str = "ADUDIFF_SCRATCH_DIR";
/// Environment variable: `disk` (default) or `memory`, the place tried first.
pub const ENV_PREFER: &str = "ADUDIFF_SCRATCH_PREFER";
/// Environment variable: most bytes of intermediates held in memory at once (suffixes K, M, G;
/// default: automatic, see [`automatic_memory_budget`]). `0` keeps every intermediate on disk.
pub const ENV_MEMORY: &str = "ADUDIFF_SCRATCH_MEMORY";
/// Environment variable: most bytes of temporary files at once (suffixes K, M, G; default: the
/// free space of the scratch directory's file system). `0` keeps every intermediate in memory.
pub const ENV_DISK: &str = "ADUDIFF_SCRATCH_DISK";

/// Memory left out of the automatic budget for the apply's fixed working set: copy and pipe
/// buffers, codec contexts (bzip2's is ~4 MiB), thread stacks and allocator overhead.
pub const WORKING_SET_RESERVE: u64 = 24 << 20;

/// Free space left on the scratch file system beyond what a temporary file takes (other writers,
/// file-system metadata).
pub const DISK_MARGIN: u64 = 1 << 20;

/// The place tried first for an intermediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    /// Temporary files first (the default: keeps the resident set small).
    Disk,
    /// Memory first (for devices whose flash should not see the writes).
    Memory,
}

/// Scratch settings of one apply.
#[derive(Clone, Debug)]
pub struct ScratchConfig {
    /// Directory of the temporary files.
    pub dir: PathBuf,
    /// Place tried first.
    pub prefer: Prefer,
    /// Most bytes of intermediates in memory at once.
    pub memory_budget: u64,
    /// Most bytes of temporary files at once (`None`: as much as the file system has free).
    pub disk_budget: Option<u64>,
    /// Most bytes of intermediates in memory or mapped at once, under an address-space limit
    /// (`None` without one): a mapped temporary file takes as much address space as a buffer.
    pub address_space_budget: Option<u64>,
}

impl ScratchConfig {
    /// The settings for an apply whose target lives in `target_dir`: the environment variables
    /// [`ENV_DIR`], [`ENV_PREFER`], [`ENV_MEMORY`] and [`ENV_DISK`] where set, defaults otherwise.
    /// A malformed value is an error (naming the variable), not silently ignored.
    pub fn from_env(target_dir: &Path) -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let dir = var(ENV_DIR).map_or_else(|| target_dir.to_path_buf(), PathBuf::from);
        let prefer = match var(ENV_PREFER).as_deref().map(str::trim) {
            None | Some("disk") => Prefer::Disk,
            Some("memory") => Prefer::Memory,
            Some(other) => return Err(config_error(ENV_PREFER, other, "disk or memory")),
        };
        let size = |name: &str| -> Result<Option<u64>> {
            match var(name) {
                None => Ok(None),
                Some(v) => parse_size(&v).map(Some).ok_or_else(|| {
                    config_error(name, &v, "a byte count such as 268435456 or 256M")
                }),
            }
        };
        let memory_budget = match size(ENV_MEMORY)? {
            Some(n) => n,
            None => automatic_memory_budget(),
        };
        Ok(ScratchConfig {
            dir,
            prefer,
            memory_budget,
            disk_budget: size(ENV_DISK)?,
            address_space_budget: automatic_address_space_budget(),
        })
    }
}

fn config_error(name: &str, value: &str, expected: &str) -> Error {
    Error::new(
        code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
        format!("Invalid {name}={value:?}: expected {expected}"),
    )
}

/// Parses a byte count with an optional binary suffix (`K`, `M`, `G`, `T`; `KiB`… and `B`
/// accepted too).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Memory the apply may give its intermediates when [`ENV_MEMORY`] is not set: the least of
/// the address space left under `RLIMIT_AS`, the room left under the process's cgroup v2
/// `memory.max`, and the kernel's `MemAvailable`, less [`WORKING_SET_RESERVE`]. Sources that
/// cannot be read impose no limit.
pub fn automatic_memory_budget() -> u64 {
    let limits = [
        address_space_headroom(),
        cgroup_headroom(),
        meminfo_field("MemAvailable:"),
    ];
    let least = limits.into_iter().flatten().min().unwrap_or(u64::MAX);
    least.saturating_sub(WORKING_SET_RESERVE)
}

/// Address space the apply may give its intermediates under `RLIMIT_AS`: what the limit leaves
/// less [`WORKING_SET_RESERVE`]; `None` without a limit.
pub fn automatic_address_space_budget() -> Option<u64> {
    address_space_headroom().map(|h| h.saturating_sub(WORKING_SET_RESERVE))
}

/// `RLIMIT_AS` less the process's current virtual size, if the limit is finite.
pub fn address_space_headroom() -> Option<u64> {
    let limit = address_space_limit()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(limit.saturating_sub(pages.saturating_mul(page)))
}

/// The soft `RLIMIT_AS` of the process, if finite.
pub fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    // The fields are 32-bit on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let cur = u64::from(limit.rlim_cur);
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(cur)
}

/// `memory.max − memory.current` of the process's cgroup (v2), if it has a limit.
fn cgroup_headroom() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" → no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// A `/proc/meminfo` field in bytes.
fn meminfo_field(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// Bytes available to this process on the file system holding `dir` (`statvfs`), or `None`
/// when it cannot be determined.
pub fn available_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<StatVfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is a valid out-pointer; it is read only after
    // statvfs reports success (which initializes it).
    let stats = unsafe {
        if statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // Root may use the blocks reserved for it; everyone else only the available ones.
    // SAFETY: geteuid has no preconditions.
    let blocks = if unsafe { libc::geteuid() } == 0 {
        stats.f_bfree
    } else {
        stats.f_bavail
    };
    // The fields are 32-bit in `statvfs` on some 32-bit targets (the agent runs on ARM32
    // devices too); the large-file variant has 64-bit block counts.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(blocks), u64::from(stats.f_frsize));
    Some(blocks.saturating_mul(size))
}

/// A file length or offset as the C type of the large-file system calls (an error, never a
/// truncation, for one beyond `i64::MAX`).
fn file_offset(len: u64) -> io::Result<off_t> {
    off_t::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))
}

/// Allocates the blocks of `[0, len)` of `file` (extending it to `len`), so that writes to that
/// range, also through a shared mapping, cannot fail for lack of space. Falls back to glibc's
/// `posix_fallocate`, which writes a byte into every block on file systems without `fallocate`.
/// Lengths of 2 GiB and more work on 32-bit targets too (large-file calls).
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let len = file_offset(len)?;
    // SAFETY: plain system calls on a descriptor `file` keeps open.
    let rc = unsafe { fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) {
        return Err(err);
    }
    // SAFETY: as above.
    match unsafe { posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Reserves the blocks of `len` bytes for `file` without changing its size
/// (`FALLOC_FL_KEEP_SIZE`), so that sequential writes up to `len` cannot run out of space.
/// `Ok(false)` when the file system cannot do that (then nothing is reserved). Lengths of
/// 2 GiB and more work on 32-bit targets too (large-file calls).
pub fn reserve(file: &File, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let len = file_offset(len)?;
    // SAFETY: a plain system call on a descriptor `file` keeps open.
    let rc = unsafe { fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => Ok(false),
        _ => Err(err),
    }
}

/// A zero-filled buffer of `len` bytes, or `None` if the allocation fails (instead of aborting
/// the process, which is what a plain `vec!` does).
pub fn try_zeroed(len: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).ok()?;
    buf.resize(len, 0);
    Some(buf)
}

/// [`try_zeroed`] as an error of `code` naming `what` the buffer was for.
pub fn buffer(len: usize, what: &str) -> io::Result<Vec<u8>> {
    try_zeroed(len).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes for {what}"),
        )
    })
}

/// Bytes of one kind of scratch in use; a [`Charge`] gives its bytes back when dropped.
#[derive(Clone, Debug, Default)]
pub struct Ledger(Arc<AtomicU64>);

impl Ledger {
    /// Bytes currently charged.
    pub fn used(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Charges `bytes` if the total stays within `limit`.
    fn charge(&self, bytes: u64, limit: u64) -> Option<Charge> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .ok()?;
        Some(Charge {
            parts: vec![(self.clone(), bytes)],
        })
    }
}

/// Scratch bytes in use (in one or more ledgers) until dropped.
#[derive(Debug)]
pub struct Charge {
    parts: Vec<(Ledger, u64)>,
}

impl Charge {
    /// This charge and `other` as one.
    fn and(mut self, mut other: Charge) -> Charge {
        self.parts.append(&mut other.parts);
        self
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        for (ledger, bytes) in &self.parts {
            ledger.0.fetch_sub(*bytes, Ordering::AcqRel);
        }
    }
}

/// Bytes an intermediate takes in each place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// As a temporary file.
    pub disk: u64,
    /// In memory.
    pub memory: u64,
    /// Whether the temporary file is mapped as a whole at once (then it takes its size in
    /// address space, which counts under an address-space limit); otherwise it is read with
    /// `pread` and mapped only if a consumer needs it in one piece (a failed map is then a
    /// clean error too).
    pub disk_mapped: bool,
}

impl Need {
    /// The same in both places, the file read with `pread`.
    pub fn same(len: u64) -> Self {
        Need {
            disk: len,
            memory: len,
            disk_mapped: false,
        }
    }

    /// The same in both places, the file mapped at once.
    pub fn mapped(len: u64) -> Self {
        Need {
            disk_mapped: true,
            ..Need::same(len)
        }
    }
}

/// Where one intermediate was given room.
#[derive(Debug)]
pub enum Room {
    /// An unlinked temporary file whose first `len` bytes are allocated (its size is `len`).
    Disk(File, Charge),
    /// A memory budget charge; the caller allocates (fallibly) within it.
    Memory(Charge),
}

/// The scratch space of one apply: shared by its threads, cheap to clone.
#[derive(Clone, Debug)]
pub struct Scratch {
    config: Arc<ScratchConfig>,
    memory: Ledger,
    disk: Ledger,
    address_space: Ledger,
}

impl Scratch {
    /// Scratch space with the given settings.
    pub fn new(config: ScratchConfig) -> Self {
        Scratch {
            config: Arc::new(config),
            memory: Ledger::default(),
            disk: Ledger::default(),
            address_space: Ledger::default(),
        }
    }

    /// Scratch space in `dir`, disk first, with the automatic memory budget (tests, tools).
    pub fn in_dir(dir: &Path) -> Self {
        Scratch::new(ScratchConfig {
            dir: dir.to_path_buf(),
            prefer: Prefer::Disk,
            memory_budget: automatic_memory_budget(),
            disk_budget: None,
            address_space_budget: automatic_address_space_budget(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ScratchConfig {
        &self.config
    }

    /// Bytes of intermediates in memory now.
    pub fn memory_used(&self) -> u64 {
        self.memory.used()
    }

    /// Bytes of temporary files now.
    pub fn disk_used(&self) -> u64 {
        self.disk.used()
    }

    /// Memory still free in the budget.
    pub fn memory_left(&self) -> u64 {
        self.config.memory_budget.saturating_sub(self.memory.used())
    }

    /// Disk space a temporary file may take now: the file system's free space less
    /// [`DISK_MARGIN`], within the disk budget.
    pub fn disk_left(&self) -> u64 {
        let free = available_space(&self.config.dir)
            .unwrap_or(u64::MAX)
            .saturating_sub(DISK_MARGIN);
        match self.config.disk_budget {
            Some(budget) => free.min(budget.saturating_sub(self.disk.used())),
            None => free,
        }
    }

    /// Room for an intermediate of `len` bytes (`what` names it in errors), in the preferred
    /// place if it fits there, else in the other.
    pub fn room(&self, len: u64, what: &str) -> Result<Room> {
        self.room_for(self.config.prefer, Need::same(len), what)
    }

    /// Room for an intermediate that takes `need.disk` bytes as a temporary file or
    /// `need.memory` bytes in memory, trying `first` first. Under an address-space limit either
    /// place also takes its bytes of address space (a mapped file as much as a buffer).
    pub fn room_for(&self, first: Prefer, need: Need, what: &str) -> Result<Room> {
        let order = match first {
            Prefer::Disk => [Prefer::Disk, Prefer::Memory],
            Prefer::Memory => [Prefer::Memory, Prefer::Disk],
        };
        self.room_in(&order, need, what)
    }

    /// Room for `len` bytes in memory only (for what cannot live in a temporary file), within
    /// the memory budget and, under an address-space limit, the address-space budget.
    pub fn memory_room(&self, len: u64, what: &str) -> Result<Charge> {
        match self.room_in(&[Prefer::Memory], Need::same(len), what)? {
            Room::Memory(charge) => Ok(charge),
            Room::Disk(..) => unreachable!("only memory was asked for"),
        }
    }

    /// Room for `need` in the first of the places in `order` where it fits.
    fn room_in(&self, order: &[Prefer], need: Need, what: &str) -> Result<Room> {
        let address_space = |len: u64| match self.config.address_space_budget {
            Some(limit) => self.address_space.charge(len, limit).map(Some),
            None => Some(None),
        };
        let mut disk_error = None;
        for &place in order {
            let (len, takes_address_space) = match place {
                Prefer::Memory => (need.memory, true),
                Prefer::Disk => (need.disk, need.disk_mapped),
            };
            let mapped = if takes_address_space {
                match address_space(len) {
                    Some(mapped) => mapped,
                    None => continue,
                }
            } else {
                None
            };
            let charged = |charge: Charge| match mapped {
                Some(a) => charge.and(a),
                None => charge,
            };
            match place {
                Prefer::Memory => {
                    if let Some(charge) = self.memory.charge(len, self.config.memory_budget) {
                        return Ok(Room::Memory(charged(charge)));
                    }
                }
                Prefer::Disk => match self.disk_room(len) {
                    Ok(Some((file, charge))) => return Ok(Room::Disk(file, charged(charge))),
                    Ok(None) => {}
                    Err(e) => disk_error = Some(e),
                },
            }
        }
        Err(self.no_room(need.disk.min(need.memory), what, disk_error))
    }

    /// A preallocated temporary file of `len` bytes, `Ok(None)` if it does not fit.
    fn disk_room(&self, len: u64) -> io::Result<Option<(File, Charge)>> {
        if len > self.disk_left() {
            return Ok(None);
        }
        let limit = self.config.disk_budget.unwrap_or(u64::MAX);
        let Some(charge) = self.disk.charge(len, limit) else {
            return Ok(None);
        };
        let file = tempfile::tempfile_in(&self.config.dir)?;
        match allocate(&file, len) {
            Ok(()) => Ok(Some((file, charge))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The error for an intermediate that fits nowhere.
    pub fn no_room(&self, len: u64, what: &str, disk_error: Option<io::Error>) -> Error {
        let disk = match disk_error {
            Some(e) => format!("temporary files in {} fail: {e}", self.config.dir.display()),
            None => format!(
                "{} bytes of disk are free for temporary files in {}",
                self.disk_left(),
                self.config.dir.display()
            ),
        };
        let address_space = match self.config.address_space_budget {
            Some(budget) => format!(
                "; under the address-space limit {} of {budget} bytes are free for intermediates",
                budget.saturating_sub(self.address_space.used())
            ),
            None => String::new(),
        };
        Error::new(
            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
            format!(
                "Not enough scratch space: {what} needs {len} bytes; {disk}, and {} of the {} bytes of the memory budget are free{address_space} (set {ENV_DIR} to a roomier directory or {ENV_MEMORY} to allow more memory)",
                self.memory_left(),
                self.config.memory_budget
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size(" 2 GiB "), Some(2 << 30));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("12X"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999T"), None);
    }

    fn config(dir: &Path, prefer: Prefer, memory: u64, disk: Option<u64>) -> ScratchConfig {
        ScratchConfig {
            dir: dir.to_path_buf(),
            prefer,
            memory_budget: memory,
            disk_budget: disk,
            address_space_budget: None,
        }
    }

    #[test]
    fn rooms_follow_preference_and_budgets() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(config(dir.path(), Prefer::Disk, 1000, Some(5000)));
        let Room::Disk(file, charge) = scratch.room(4500, "a").unwrap() else {
            panic!("disk first")
        };
        assert_eq!(file.metadata().unwrap().len(), 4500);
        assert_eq!(scratch.disk_used(), 4500);
        // The disk budget is spent: the next one goes to memory, then nothing fits.
        let memory = scratch.room(800, "b").unwrap();
        assert!(matches!(memory, Room::Memory(_)));
        let err = scratch.room(800, "the third").unwrap_err();
        assert_eq!(err.code, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN);
        assert!(err.message.contains("the third needs 800 bytes"), "{err}");
        drop((file, charge, memory));
        assert_eq!((scratch.disk_used(), scratch.memory_used()), (0, 0));

        let scratch = Scratch::new(config(dir.path(), Prefer::Memory, 1000, None));
        assert!(matches!(scratch.room(1000, "m").unwrap(), Room::Memory(_)));
        assert!(matches!(scratch.room(1001, "d").unwrap(), Room::Disk(..)));
    }

    #[test]
    fn missing_directory_is_a_clean_error() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(config(&dir.path().join("gone"), Prefer::Disk, 0, None));
        let err = scratch.room(10, "x").unwrap_err();
        assert_eq!(err.code, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN);
        assert!(err.message.contains("fail"), "{err}");
    }

    #[test]
    fn file_offsets_are_64_bit_on_every_target() {
        // 2 GiB and more: beyond a 32-bit `off_t` (armv7 glibc without the large-file calls).
        for len in [1u64 << 31, 3 << 30, 5 << 30] {
            assert_eq!(file_offset(len).unwrap() as u64, len);
        }
        assert!(file_offset(u64::MAX).is_err());
    }

    #[test]
    fn fallible_buffers() {
        assert_eq!(try_zeroed(16).unwrap(), vec![0u8; 16]);
        // More than isize::MAX bytes can never be allocated, on any target.
        assert!(try_zeroed(usize::MAX).is_none());
    }
}
