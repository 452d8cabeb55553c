//! Read-only, defensive parser of ext2 / ext3 / ext4 file-system images held in memory.
//!
//! The delta generator uses it to find where each regular file's data lives in an image, so
//! that a file's content can be diffed against the same file's content in the other image
//! whatever blocks the file system put it in.
//!
//! What is read: the superblock (byte 1024), the group descriptors (32- or 64-bit, `meta_bg`
//! layout too), the inodes, extent trees (`EXT4_EXTENTS_FL`), classic block maps (12 direct
//! pointers, single, double and triple indirect blocks), inline data (`EXT4_INLINE_DATA_FL`:
//! `i_block` and the `system.data` extended attribute) and directories, walked from the root
//! (inode 2) depth-first with each directory's entries sorted by name. Hashed (htree)
//! directories are read linearly: their index blocks look like empty directory entries.
//!
//! The image is untrusted: every offset and length is checked against it, recursion is bounded
//! (extent tree depth, directory depth), directories are visited once, and the total work is
//! bounded by a budget proportional to the image size. A file or directory whose metadata is
//! inconsistent is left out (and counted in [`Ext4Image::skipped`]); an image whose superblock
//! or root directory is unusable, or that exhausts the budget, is an error. The parser never
//! panics on garbage.

use std::collections::HashSet;

/// One run of contiguous blocks of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First block of the run in the file (block index, file order).
    pub logical: u64,
    /// First block of the run in the image (block number).
    pub physical: u64,
    /// Number of blocks.
    pub len: u64,
}

/// A regular file of the image.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Path from the root, `/`-separated, without a leading slash (`usr/bin/ls`). For a file with
    /// several hard links, the first path in traversal order (depth-first, names sorted).
    pub path: String,
    /// Inode number.
    pub inode: u32,
    /// File size in bytes.
    pub size: u64,
    /// Data blocks, sorted by `logical`, not overlapping, contiguous runs merged; unwritten
    /// (preallocated) extents are left out, as are holes. Empty for inline-data files.
    pub extents: Vec<Extent>,
    /// For an inline-data file, the byte ranges `(offset, len)` in the image holding its
    /// content, in file order (the inode's `i_block`, then the `system.data` attribute value);
    /// empty otherwise.
    pub inline_data: Vec<(u64, u64)>,
}

/// What the generator needs of an image.
#[derive(Clone, Debug)]
pub struct Ext4Image {
    /// Block size in bytes (1024 to 65536).
    pub block_size: u64,
    /// Blocks in the file system (superblock's count).
    pub blocks_count: u64,
    /// Regular files reachable from the root directory, each inode once, in traversal order.
    pub files: Vec<FileEntry>,
    /// Files and directories left out because their metadata is inconsistent (or too deep).
    pub skipped: u64,
}

/// Superblock offset in the image.
const SUPERBLOCK_OFFSET: usize = 1024;
/// Superblock size.
const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
const EXT_MAGIC: u16 = 0xEF53;
/// Extent node header magic.
const EXTENT_MAGIC: u16 = 0xF30A;
/// Root directory inode.
const ROOT_INODE: u32 = 2;

/// `s_feature_compat`: `sparse_super2` (backup superblocks in at most two groups).
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
/// `s_feature_incompat`: journal device (no files).
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
/// `s_feature_incompat`: `meta_bg` (group descriptors spread over the groups).
const INCOMPAT_META_BG: u32 = 0x10;
/// `s_feature_incompat`: 64-bit block numbers and descriptors of `s_desc_size` bytes.
const INCOMPAT_64BIT: u32 = 0x80;
/// `s_feature_incompat`: directories may use `i_size_high`.
const INCOMPAT_LARGEDIR: u32 = 0x4000;
/// `s_feature_ro_compat`: backup superblocks only in groups 0, 1 and powers of 3, 5, 7.
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// `s_feature_ro_compat`: group descriptor checksums (`uninit_bg`).
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
/// `s_feature_ro_compat`: metadata checksums (implies what `uninit_bg` does).
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// `bg_flags`: the group's inode table is not initialized.
const BG_INODE_UNINIT: u16 = 0x1;

/// `i_flags`: the inode uses an extent tree.
const EXTENTS_FL: u32 = 0x80000;
/// `i_flags`: the inode stores its data inline.
const INLINE_DATA_FL: u32 = 0x1000_0000;

/// `i_mode` file-type mask and values.
const S_IFMT: u16 = 0xF000;
const S_IFREG: u16 = 0x8000;
const S_IFDIR: u16 = 0x4000;

/// Largest extent tree depth accepted (ext4 uses at most 5).
const MAX_EXTENT_DEPTH: u16 = 5;
/// Deepest directory nesting walked (the root is depth 0).
const MAX_DIR_DEPTH: usize = 64;
/// Extent length above which an extent is unwritten (its length is `ee_len - 32768`).
const EXT_INIT_MAX_LEN: u16 = 32768;
/// `i_block` size.
const I_BLOCK_LEN: usize = 60;
/// `i_block` offset in the inode.
const I_BLOCK_OFFSET: usize = 0x28;
/// Smallest inode (the "good old" revision-0 size).
const GOOD_OLD_INODE_SIZE: usize = 128;
/// In-inode extended-attribute header magic.
const XATTR_MAGIC: u32 = 0xEA02_0000;
/// `system.` attribute name index (`system.data` holds inline data past `i_block`).
const XATTR_INDEX_SYSTEM: u8 = 7;

/// Parses `image`; Err(reason) when it is not an ext2/3/4 image or is inconsistent.
///
/// Files and directories whose own metadata is broken are skipped (see [`Ext4Image::skipped`]);
/// an unusable superblock, group descriptor table or root directory, or an image whose
/// metadata would need more work than a sane one of its size, is an error.
pub fn parse(image: &[u8]) -> Result<Ext4Image, String> {
    let mut fs = Fs::open(image)?;
    let (files, skipped) = fs.walk()?;
    Ok(Ext4Image {
        block_size: fs.bs,
        blocks_count: fs.blocks_count,
        files,
        skipped,
    })
}

impl Ext4Image {
    /// Byte ranges (offset, len) in the image holding `file`'s first `size` bytes, in file order
    /// (holes are reported as `None` entries of the given length so the caller can fill zeros).
    ///
    /// Adjacent ranges are merged (contiguous data, consecutive holes); the lengths add up to
    /// `file.size`. Every `Some` range lies inside the image that [`parse`] was given.
    pub fn file_ranges(&self, file: &FileEntry) -> Vec<(Option<u64>, u64)> {
        let size = file.size;
        let mut out: Vec<(Option<u64>, u64)> = Vec::new();
        let mut pos = 0u64;
        if !file.inline_data.is_empty() {
            for &(offset, len) in &file.inline_data {
                let len = len.min(size - pos);
                push_range(&mut out, Some(offset), len);
                pos += len;
            }
        } else {
            let bs = self.block_size;
            for e in &file.extents {
                if pos >= size {
                    break;
                }
                let start = e.logical.saturating_mul(bs).min(size);
                let end = start.saturating_add(e.len.saturating_mul(bs)).min(size);
                if end <= pos {
                    continue;
                }
                if start > pos {
                    push_range(&mut out, None, start - pos);
                    pos = start;
                }
                let physical = e.physical.saturating_mul(bs).saturating_add(pos - start);
                push_range(&mut out, Some(physical), end - pos);
                pos = end;
            }
        }
        if pos < size {
            push_range(&mut out, None, size - pos);
        }
        out
    }
}

/// Appends a range, merging it with the previous one when they are contiguous.
fn push_range(out: &mut Vec<(Option<u64>, u64)>, offset: Option<u64>, len: u64) {
    if len == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        match (last.0, offset) {
            (None, None) => {
                last.1 += len;
                return;
            }
            (Some(a), Some(b)) if a.checked_add(last.1) == Some(b) => {
                last.1 += len;
                return;
            }
            _ => {}
        }
    }
    out.push((offset, len));
}

/// Why a part of the image could not be read.
#[derive(Debug)]
enum Fail {
    /// This file or directory is inconsistent: skip it.
    Broken,
    /// The work budget is exhausted: give up on the image.
    Budget,
}

type R<T> = Result<T, Fail>;

/// Little-endian reads that fail (instead of panicking) out of range.
fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `Option` → `R`, a missing value meaning broken metadata.
trait OrBroken<T> {
    fn broken(self) -> R<T>;
}

impl<T> OrBroken<T> for Option<T> {
    fn broken(self) -> R<T> {
        self.ok_or(Fail::Broken)
    }
}

/// What is kept of an inode.
struct Inode<'a> {
    /// Byte offset of the inode in the image.
    offset: u64,
    /// The inode's bytes (`s_inode_size` of them, at least 128).
    raw: &'a [u8],
    mode: u16,
    flags: u32,
    size_lo: u32,
    size_hi: u32,
    i_block: [u8; I_BLOCK_LEN],
}

impl Inode<'_> {
    fn kind(&self) -> u16 {
        self.mode & S_IFMT
    }
}

/// A directory entry kept for sorting.
struct Dirent {
    name: Vec<u8>,
    inode: u32,
}

/// The open file system: geometry and the work budget.
struct Fs<'a> {
    img: &'a [u8],
    bs: u64,
    blocks_count: u64,
    /// Block numbers at or above this are outside the file system or the image.
    blocks_limit: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    inodes_count: u32,
    inodes_per_group: u32,
    inode_size: usize,
    desc_size: usize,
    desc_64: bool,
    groups: u64,
    incompat: u32,
    compat: u32,
    ro_compat: u32,
    first_meta_bg: u64,
    backup_bgs: [u32; 2],
    /// Bytes of metadata that may still be examined.
    budget: u64,
}

impl<'a> Fs<'a> {
    /// Reads and checks the superblock and the first group descriptor.
    fn open(img: &'a [u8]) -> Result<Fs<'a>, String> {
        let sb = img
            .get(SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE)
            .ok_or("image too short for an ext2/3/4 superblock")?;
        let r16 = |o| u16_at(sb, o).unwrap_or(0);
        let r32 = |o| u32_at(sb, o).unwrap_or(0);
        if r16(0x38) != EXT_MAGIC {
            return Err("no ext2/3/4 superblock magic (0xEF53) at byte 1024".into());
        }
        let log_bs = r32(0x18);
        if log_bs > 6 {
            return Err(format!("unsupported block size 1024 << {log_bs}"));
        }
        let bs = 1024u64 << log_bs;
        let compat = r32(0x5C);
        let incompat = r32(0x60);
        let ro_compat = r32(0x64);
        if incompat & INCOMPAT_JOURNAL_DEV != 0 {
            return Err("external journal device, not a file system".into());
        }
        let desc_64 = incompat & INCOMPAT_64BIT != 0;
        let mut blocks_count = u64::from(r32(0x04));
        if desc_64 {
            blocks_count |= u64::from(r32(0x150)) << 32;
        }
        let first_data_block = u64::from(r32(0x14));
        let blocks_per_group = u64::from(r32(0x20));
        let inodes_count = r32(0x00);
        let inodes_per_group = r32(0x28);
        let rev_level = r32(0x4C);
        let inode_size = if rev_level == 0 {
            GOOD_OLD_INODE_SIZE
        } else {
            usize::from(r16(0x58))
        };
        if inode_size < GOOD_OLD_INODE_SIZE
            || !inode_size.is_power_of_two()
            || inode_size as u64 > bs
        {
            return Err(format!("bad inode size {inode_size}"));
        }
        let desc_size = if desc_64 { usize::from(r16(0xFE)) } else { 32 };
        if desc_64 && (!(64..=1024).contains(&desc_size) || !desc_size.is_power_of_two()) {
            return Err(format!("bad group descriptor size {desc_size}"));
        }
        if first_data_block > 1 || first_data_block >= blocks_count {
            return Err(format!(
                "bad first data block {first_data_block} of {blocks_count}"
            ));
        }
        if blocks_per_group < 8 {
            return Err(format!("bad blocks per group {blocks_per_group}"));
        }
        if inodes_per_group == 0 || u64::from(inodes_per_group) > 8 * bs {
            return Err(format!("bad inodes per group {inodes_per_group}"));
        }
        let groups = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        if u64::from(inodes_count) > groups.saturating_mul(u64::from(inodes_per_group))
            || inodes_count < ROOT_INODE
        {
            return Err(format!(
                "{inodes_count} inodes do not fit {groups} groups of {inodes_per_group}"
            ));
        }
        let image_blocks = img.len() as u64 / bs;
        let fs = Fs {
            img,
            bs,
            blocks_count,
            blocks_limit: blocks_count.min(image_blocks),
            first_data_block,
            blocks_per_group,
            inodes_count,
            inodes_per_group,
            inode_size,
            desc_size,
            desc_64,
            groups,
            incompat,
            compat,
            ro_compat,
            first_meta_bg: u64::from(r32(0x104)),
            backup_bgs: [r32(0x24C), r32(0x250)],
            // Each metadata block of a sane image is examined about once; allow a few times the
            // image, plus slack for tiny images.
            budget: (img.len() as u64)
                .saturating_mul(4)
                .saturating_add(64 << 20),
        };
        // The root's group must have a usable descriptor and inode table.
        fs.inode_table(0)
            .map_err(|_| "first group descriptor unreadable".to_string())?;
        Ok(fs)
    }

    /// Charges `n` bytes of work.
    fn charge(&mut self, n: u64) -> R<()> {
        self.budget = self.budget.checked_sub(n).ok_or(Fail::Budget)?;
        Ok(())
    }

    /// Block `blk` of the image (metadata or directory data), charged to the budget.
    fn block(&mut self, blk: u64) -> R<&'a [u8]> {
        if blk == 0 || blk >= self.blocks_limit {
            return Err(Fail::Broken);
        }
        self.charge(self.bs)?;
        let start = usize::try_from(blk * self.bs).map_err(|_| Fail::Broken)?;
        let end = start.checked_add(self.bs as usize).broken()?;
        self.img.get(start..end).broken()
    }

    /// Whether group `g` holds a superblock backup (and so descriptor copies in `meta_bg`).
    fn group_has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_bgs.iter().any(|&b| u64::from(b) == g);
        }
        if g <= 1 || self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if g & 1 == 0 {
            return false;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                p = match p.checked_mul(base) {
                    Some(v) => v,
                    None => return false,
                };
            }
            p == g
        })
    }

    /// Block holding descriptor block `i` of the group descriptor table.
    fn desc_block(&self, i: u64) -> Option<u64> {
        // The superblock is in block 1 with 1 KiB blocks (even when bigalloc makes
        // s_first_data_block 0), in block 0 otherwise; the classic table follows it.
        let sb_block = SUPERBLOCK_OFFSET as u64 / self.bs;
        if self.incompat & INCOMPAT_META_BG == 0 || i < self.first_meta_bg {
            return (sb_block + 1).checked_add(i);
        }
        let per_block = self.bs / self.desc_size as u64;
        let g = i.checked_mul(per_block)?;
        if g == 0 {
            return Some(sb_block + 1);
        }
        let first = self
            .first_data_block
            .checked_add(g.checked_mul(self.blocks_per_group)?)?;
        Some(first + u64::from(self.group_has_super(g)))
    }

    /// Inode table block of group `g` and whether the group's inodes are initialized.
    fn inode_table(&self, g: u64) -> R<(u64, bool)> {
        if g >= self.groups {
            return Err(Fail::Broken);
        }
        let per_block = self.bs / self.desc_size as u64;
        let blk = self.desc_block(g / per_block).broken()?;
        if blk == 0 || blk >= self.blocks_limit {
            return Err(Fail::Broken);
        }
        let off = blk * self.bs + (g % per_block) * self.desc_size as u64;
        let off = usize::try_from(off).map_err(|_| Fail::Broken)?;
        let d = self
            .img
            .get(off..off.checked_add(self.desc_size).broken()?)
            .broken()?;
        let mut table = u64::from(u32_at(d, 0x08).broken()?);
        if self.desc_64 && self.desc_size >= 64 {
            table |= u64::from(u32_at(d, 0x28).broken()?) << 32;
        }
        let flags = u16_at(d, 0x12).broken()?;
        let csum = self.ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0;
        let initialized = !(csum && flags & BG_INODE_UNINIT != 0);
        if table == 0 || table >= self.blocks_limit {
            return Err(Fail::Broken);
        }
        Ok((table, initialized))
    }

    /// Reads inode `ino`.
    fn inode(&mut self, ino: u32) -> R<Inode<'a>> {
        if ino == 0 || ino > self.inodes_count {
            return Err(Fail::Broken);
        }
        let ipg = u64::from(self.inodes_per_group);
        let index = u64::from(ino - 1);
        let (table, initialized) = self.inode_table(index / ipg)?;
        if !initialized {
            return Err(Fail::Broken);
        }
        self.charge(self.inode_size as u64)?;
        let offset = (index % ipg)
            .checked_mul(self.inode_size as u64)
            .and_then(|o| o.checked_add(table.checked_mul(self.bs)?))
            .broken()?;
        let start = usize::try_from(offset).map_err(|_| Fail::Broken)?;
        let raw = self
            .img
            .get(start..start.checked_add(self.inode_size).broken()?)
            .broken()?;
        let mut i_block = [0u8; I_BLOCK_LEN];
        i_block.copy_from_slice(
            raw.get(I_BLOCK_OFFSET..I_BLOCK_OFFSET + I_BLOCK_LEN)
                .broken()?,
        );
        Ok(Inode {
            offset,
            raw,
            mode: u16_at(raw, 0x00).broken()?,
            size_lo: u32_at(raw, 0x04).broken()?,
            flags: u32_at(raw, 0x20).broken()?,
            size_hi: u32_at(raw, 0x6C).broken()?,
            i_block,
        })
    }

    /// The inode's size in bytes (`i_size_high` counts for files and `largedir` directories).
    fn size_of(&self, inode: &Inode) -> u64 {
        let lo = u64::from(inode.size_lo);
        if inode.kind() == S_IFREG || self.incompat & INCOMPAT_LARGEDIR != 0 {
            lo | u64::from(inode.size_hi) << 32
        } else {
            lo
        }
    }

    /// The data blocks of an inode (extent tree or block map), sorted, merged, checked.
    fn extents(&mut self, inode: &Inode, size: u64) -> R<Vec<Extent>> {
        let mut out = Vec::new();
        if inode.flags & EXTENTS_FL != 0 {
            let root = inode.i_block;
            self.extent_node(&root, None, &mut out)?;
            out.sort_unstable_by_key(|e| e.logical);
        } else {
            let nblocks = size.div_ceil(self.bs);
            self.block_map(&inode.i_block, nblocks, &mut out)?;
        }
        let mut merged: Vec<Extent> = Vec::with_capacity(out.len());
        for e in out {
            if let Some(last) = merged.last_mut() {
                let last_end = last.logical + last.len;
                if e.logical < last_end {
                    return Err(Fail::Broken); // overlapping extents
                }
                if e.logical == last_end && last.physical + last.len == e.physical {
                    last.len += e.len;
                    continue;
                }
            }
            merged.push(e);
        }
        Ok(merged)
    }

    /// Walks an extent tree node; `depth` is the depth the parent expects (None at the root).
    fn extent_node(&mut self, node: &[u8], depth: Option<u16>, out: &mut Vec<Extent>) -> R<()> {
        if u16_at(node, 0).broken()? != EXTENT_MAGIC {
            return Err(Fail::Broken);
        }
        let entries = usize::from(u16_at(node, 2).broken()?);
        let max = usize::from(u16_at(node, 4).broken()?);
        let node_depth = u16_at(node, 6).broken()?;
        if entries > max
            || 12 + entries * 12 > node.len()
            || node_depth > MAX_EXTENT_DEPTH
            || depth.is_some_and(|d| d != node_depth)
        {
            return Err(Fail::Broken);
        }
        for k in 0..entries {
            let e = &node[12 + k * 12..24 + k * 12];
            let logical = u64::from(u32_at(e, 0).broken()?);
            if node_depth == 0 {
                let raw_len = u16_at(e, 4).broken()?;
                let physical =
                    u64::from(u16_at(e, 6).broken()?) << 32 | u64::from(u32_at(e, 8).broken()?);
                let (len, unwritten) = if raw_len > EXT_INIT_MAX_LEN {
                    (u64::from(raw_len - EXT_INIT_MAX_LEN), true)
                } else {
                    (u64::from(raw_len), false)
                };
                if len == 0
                    || logical + len > 1 << 32
                    || physical == 0
                    || physical
                        .checked_add(len)
                        .is_none_or(|end| end > self.blocks_limit)
                {
                    return Err(Fail::Broken);
                }
                if !unwritten {
                    out.push(Extent {
                        logical,
                        physical,
                        len,
                    });
                }
            } else {
                let child =
                    u64::from(u16_at(e, 8).broken()?) << 32 | u64::from(u32_at(e, 4).broken()?);
                let block = self.block(child)?;
                self.extent_node(block, Some(node_depth - 1), out)?;
            }
        }
        Ok(())
    }

    /// Walks a classic block map (12 direct pointers, then single, double, triple indirect),
    /// up to `nblocks` logical blocks; zero pointers are holes.
    fn block_map(&mut self, i_block: &[u8], nblocks: u64, out: &mut Vec<Extent>) -> R<()> {
        for i in 0..12usize {
            if i as u64 >= nblocks {
                return Ok(());
            }
            let p = u32_at(i_block, i * 4).broken()?;
            if p != 0 {
                self.push_block(out, i as u64, u64::from(p))?;
            }
        }
        let per_block = self.bs / 4;
        let mut first = 12u64;
        let mut span = per_block;
        for level in 1..=3u32 {
            let p = u32_at(i_block, (11 + level as usize) * 4).broken()?;
            self.indirect(u64::from(p), level, first, nblocks, out)?;
            first += span;
            span *= per_block;
        }
        Ok(())
    }

    /// One indirect block of `level` (1 = pointers to data) mapping logical blocks from `first`.
    fn indirect(
        &mut self,
        blk: u64,
        level: u32,
        first: u64,
        nblocks: u64,
        out: &mut Vec<Extent>,
    ) -> R<()> {
        if blk == 0 || first >= nblocks {
            return Ok(());
        }
        let data = self.block(blk)?;
        let per_block = self.bs / 4;
        let span = per_block.pow(level - 1);
        for j in 0..per_block {
            let logical = first + j * span;
            if logical >= nblocks {
                break;
            }
            let p = u64::from(u32_at(data, j as usize * 4).broken()?);
            if p == 0 {
                continue;
            }
            if level == 1 {
                self.push_block(out, logical, p)?;
            } else {
                self.indirect(p, level - 1, logical, nblocks, out)?;
            }
        }
        Ok(())
    }

    /// Appends one mapped block, extending the last extent when contiguous.
    fn push_block(&self, out: &mut Vec<Extent>, logical: u64, physical: u64) -> R<()> {
        if physical >= self.blocks_limit {
            return Err(Fail::Broken);
        }
        if let Some(last) = out.last_mut() {
            if last.logical + last.len == logical && last.physical + last.len == physical {
                last.len += 1;
                return Ok(());
            }
        }
        out.push(Extent {
            logical,
            physical,
            len: 1,
        });
        Ok(())
    }

    /// Byte ranges of an inline-data file: `i_block`, then the `system.data` attribute value.
    fn inline_ranges(&self, inode: &Inode, size: u64) -> R<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        let head = size.min(I_BLOCK_LEN as u64);
        if head > 0 {
            out.push((inode.offset + I_BLOCK_OFFSET as u64, head));
        }
        let rest = size - head;
        if rest == 0 {
            return Ok(out);
        }
        let raw = inode.raw;
        let extra = usize::from(u16_at(raw, GOOD_OLD_INODE_SIZE).broken()?);
        let header = GOOD_OLD_INODE_SIZE + extra;
        if raw.len() <= GOOD_OLD_INODE_SIZE || header % 4 != 0 {
            return Err(Fail::Broken);
        }
        if u32_at(raw, header).broken()? != XATTR_MAGIC {
            return Err(Fail::Broken);
        }
        let first_entry = header + 4;
        let mut pos = first_entry;
        // Each entry is at least 16 bytes, so this ends within the inode.
        while pos + 16 <= raw.len() && u32_at(raw, pos).broken()? != 0 {
            let name_len = usize::from(u8_at(raw, pos).broken()?);
            let index = u8_at(raw, pos + 1).broken()?;
            let value_offs = usize::from(u16_at(raw, pos + 2).broken()?);
            let value_inum = u32_at(raw, pos + 4).broken()?;
            let value_size = u64::from(u32_at(raw, pos + 8).broken()?);
            let name = raw.get(pos + 16..pos + 16 + name_len).broken()?;
            if index == XATTR_INDEX_SYSTEM && name == b"data" {
                let value_start = first_entry + value_offs;
                if value_inum != 0
                    || value_size < rest
                    || value_start as u64 + rest > raw.len() as u64
                {
                    return Err(Fail::Broken);
                }
                out.push((inode.offset + value_start as u64, rest));
                return Ok(out);
            }
            pos += (16 + name_len + 3) & !3;
        }
        Err(Fail::Broken)
    }

    /// The entries of a directory (all data blocks, linear format), sorted by name.
    fn read_dir(&mut self, inode: &Inode) -> R<Vec<Dirent>> {
        let size = self.size_of(inode);
        let nblocks = size.div_ceil(self.bs);
        let extents = self.extents(inode, size)?;
        let mut entries = Vec::new();
        for e in extents {
            for k in 0..e.len {
                if e.logical + k >= nblocks {
                    break;
                }
                let block = self.block(e.physical + k)?;
                self.parse_dir_block(block, &mut entries);
            }
        }
        // Stable: of entries with the same name (a damaged directory), the first on disk stays.
        entries.sort_by(|a: &Dirent, b| a.name.cmp(&b.name));
        entries.dedup_by(|later, first| later.name == first.name);
        Ok(entries)
    }

    /// Entries of one directory block; stops at the first malformed entry.
    fn parse_dir_block(&self, block: &[u8], out: &mut Vec<Dirent>) {
        let mut pos = 0usize;
        while pos + 8 <= block.len() {
            let (Some(inode), Some(raw_rec), Some(name_len)) = (
                u32_at(block, pos),
                u16_at(block, pos + 4),
                u8_at(block, pos + 6),
            ) else {
                return;
            };
            let rec_len = self.rec_len(raw_rec);
            let name_len = usize::from(name_len);
            if rec_len < 8
                || rec_len % 4 != 0
                || pos + rec_len > block.len()
                || 8 + name_len > rec_len
            {
                return;
            }
            let name = &block[pos + 8..pos + 8 + name_len];
            if inode != 0
                && !name.is_empty()
                && name != b"."
                && name != b".."
                && !name.contains(&b'/')
                && !name.contains(&0)
            {
                out.push(Dirent {
                    name: name.to_vec(),
                    inode,
                });
            }
            pos += rec_len;
        }
    }

    /// `rec_len` as stored → bytes (64 KiB blocks encode lengths of 65536 specially).
    fn rec_len(&self, raw: u16) -> usize {
        if self.bs < 65536 {
            usize::from(raw)
        } else if raw == 0 || raw == u16::MAX {
            self.bs as usize
        } else {
            usize::from(raw & 0xFFFC) | usize::from(raw & 3) << 16
        }
    }

    /// Walks the tree from the root: the regular files, and how many entries were skipped.
    fn walk(&mut self) -> Result<(Vec<FileEntry>, u64), String> {
        let budget_err = || "image metadata needs more work than its size allows".to_string();
        let root = match self.inode(ROOT_INODE) {
            Ok(i) => i,
            Err(Fail::Budget) => return Err(budget_err()),
            Err(Fail::Broken) => return Err("root inode unreadable".into()),
        };
        if root.kind() != S_IFDIR {
            return Err("root inode is not a directory".into());
        }
        let mut files = Vec::new();
        let mut skipped = 0u64;
        let mut seen_dirs: HashSet<u32> = HashSet::new();
        let mut seen_files: HashSet<u32> = HashSet::new();
        // Pending entries, in reverse order of visit: (inode, path, depth).
        let mut stack: Vec<(u32, String, usize)> = vec![(ROOT_INODE, String::new(), 0)];
        while let Some((ino, path, depth)) = stack.pop() {
            let inode = match self.inode(ino) {
                Ok(i) => i,
                Err(Fail::Budget) => return Err(budget_err()),
                Err(Fail::Broken) => {
                    skipped += 1;
                    continue;
                }
            };
            match inode.kind() {
                S_IFREG => {
                    if !seen_files.insert(ino) {
                        continue; // another hard link, reported under its first path
                    }
                    let size = self.size_of(&inode);
                    let mapped = if inode.flags & INLINE_DATA_FL != 0 {
                        self.inline_ranges(&inode, size).map(|r| (Vec::new(), r))
                    } else {
                        self.extents(&inode, size).map(|e| (e, Vec::new()))
                    };
                    match mapped {
                        Ok((extents, inline_data)) => files.push(FileEntry {
                            path,
                            inode: ino,
                            size,
                            extents,
                            inline_data,
                        }),
                        Err(Fail::Budget) => return Err(budget_err()),
                        Err(Fail::Broken) => skipped += 1,
                    }
                }
                S_IFDIR => {
                    if inode.flags & INLINE_DATA_FL != 0 || !seen_dirs.insert(ino) {
                        continue;
                    }
                    if depth >= MAX_DIR_DEPTH {
                        skipped += 1;
                        continue;
                    }
                    let entries = match self.read_dir(&inode) {
                        Ok(e) => e,
                        Err(Fail::Budget) => return Err(budget_err()),
                        Err(Fail::Broken) if ino == ROOT_INODE => {
                            return Err("root directory unreadable".into())
                        }
                        Err(Fail::Broken) => {
                            skipped += 1;
                            continue;
                        }
                    };
                    for d in entries.into_iter().rev() {
                        let name = String::from_utf8_lossy(&d.name);
                        let child = if path.is_empty() {
                            name.into_owned()
                        } else {
                            format!("{path}/{name}")
                        };
                        if self.charge(child.len() as u64 + 32).is_err() {
                            return Err(budget_err());
                        }
                        stack.push((d.inode, child, depth + 1));
                    }
                }
                _ => {}
            }
        }
        Ok((files, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_ranges_merge_and_fill_holes() {
        let image = Ext4Image {
            block_size: 1024,
            blocks_count: 100,
            files: Vec::new(),
            skipped: 0,
        };
        let file = FileEntry {
            path: "f".into(),
            inode: 12,
            size: 5 * 1024 + 10,
            extents: vec![
                Extent {
                    logical: 1,
                    physical: 10,
                    len: 1,
                },
                Extent {
                    logical: 2,
                    physical: 11,
                    len: 1,
                },
                Extent {
                    logical: 5,
                    physical: 40,
                    len: 3,
                },
            ],
            inline_data: Vec::new(),
        };
        assert_eq!(
            image.file_ranges(&file),
            vec![
                (None, 1024),
                (Some(10 * 1024), 2048),
                (None, 2048),
                (Some(40 * 1024), 10)
            ]
        );
        let empty = FileEntry {
            size: 0,
            ..file.clone()
        };
        assert!(image.file_ranges(&empty).is_empty());
        let sparse = FileEntry {
            extents: Vec::new(),
            ..file
        };
        assert_eq!(image.file_ranges(&sparse), vec![(None, 5 * 1024 + 10)]);
    }

    #[test]
    fn ext4_sparse_super_groups() {
        let mut img = vec![0u8; 4096];
        img[1024 + 0x38..1024 + 0x3A].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        // Not a usable file system, but enough to check the helper through a hand-built Fs.
        let fs = Fs {
            img: &img,
            bs: 1024,
            blocks_count: 4,
            blocks_limit: 4,
            first_data_block: 1,
            blocks_per_group: 8192,
            inodes_count: 16,
            inodes_per_group: 16,
            inode_size: 128,
            desc_size: 32,
            desc_64: false,
            groups: 1,
            incompat: 0,
            compat: 0,
            ro_compat: RO_COMPAT_SPARSE_SUPER,
            first_meta_bg: 0,
            backup_bgs: [0, 0],
            budget: 0,
        };
        let with: Vec<u64> = (0..100).filter(|&g| fs.group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }
}
