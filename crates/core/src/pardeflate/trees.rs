//! Block encoding: Huffman tree construction and the stored/fixed/dynamic decision.
//!
//! The algorithms (heap-based tree construction with depth tie-breaking, `gen_bitlen` with its
//! overflow repair, canonical `gen_codes`, run-length coding of the code lengths, the
//! `opt_len`/`static_len` comparison) are those of zlib's `trees.c` by Jean-loup Gailly and
//! Mark Adler; they are reproduced step for step because the output has to be bit-identical.

use super::bits::BitWriter;
use super::tables::*;

/// One symbol of the LZ77 stream, packed like zlib's `sym_buf`: `dist << 8 | lc` where
/// `dist == 0` means a literal byte `lc`, otherwise a match of length `lc + 3` at distance
/// `dist` (1..=32768).
pub(crate) type Sym = u32;

/// A literal symbol.
#[inline(always)]
pub(crate) fn sym_lit(byte: u8) -> Sym {
    u32::from(byte)
}

/// A match symbol (`len` 3..=258, `dist` 1..=32768).
#[inline(always)]
pub(crate) fn sym_match(dist: usize, len: usize) -> Sym {
    ((dist as u32) << 8) | (len - MIN_MATCH) as u32
}

/// Number of input bytes a symbol covers.
#[inline(always)]
pub(crate) fn sym_len(s: Sym) -> usize {
    if s >> 8 == 0 {
        1
    } else {
        (s & 255) as usize + MIN_MATCH
    }
}

const HEAP_SIZE: usize = 2 * L_CODES + 1;

/// Static description of one of the three trees.
struct TreeKind {
    elems: usize,
    max_length: usize,
    extra: &'static [u8],
    extra_base: usize,
    /// Lengths of the corresponding fixed tree (literal and distance trees only).
    static_len: Option<&'static [u16]>,
}

const L_KIND: TreeKind = TreeKind {
    elems: L_CODES,
    max_length: MAX_BITS,
    extra: &EXTRA_LBITS,
    extra_base: LITERALS + 1,
    static_len: Some(&STATIC_LTREE.len),
};
const D_KIND: TreeKind = TreeKind {
    elems: D_CODES,
    max_length: MAX_BITS,
    extra: &EXTRA_DBITS,
    extra_base: 0,
    static_len: Some(&STATIC_DTREE.len),
};
const BL_KIND: TreeKind = TreeKind {
    elems: BL_CODES,
    max_length: MAX_BL_BITS,
    extra: &EXTRA_BLBITS,
    extra_base: 0,
    static_len: None,
};

/// A dynamic tree: per node frequency, father, code length and code.
#[derive(Clone)]
struct Tree {
    freq: Vec<u32>,
    dad: Vec<u16>,
    len: Vec<u16>,
    code: Vec<u16>,
    max_code: isize,
}

impl Tree {
    fn new(nodes: usize) -> Self {
        Tree {
            freq: vec![0; nodes],
            dad: vec![0; nodes],
            len: vec![0; nodes],
            code: vec![0; nodes],
            max_code: -1,
        }
    }
}

/// How a block was (or will be) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// Stored (uncompressed) block.
    Stored,
    /// Fixed Huffman codes.
    Fixed,
    /// Dynamic Huffman codes.
    Dynamic,
}

/// Scratch state for encoding blocks; reusable across blocks.
pub(crate) struct BlockEncoder {
    ltree: Tree,
    dtree: Tree,
    bltree: Tree,
    bl_count: [u16; MAX_BITS + 1],
    heap: [usize; HEAP_SIZE],
    heap_len: usize,
    heap_max: usize,
    depth: [u8; HEAP_SIZE],
    opt_len: u64,
    static_len: u64,
}

impl Default for BlockEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Which of the encoder's trees an operation works on.
#[derive(Clone, Copy)]
enum Which {
    L,
    D,
    Bl,
}

impl BlockEncoder {
    /// A fresh encoder.
    pub(crate) fn new() -> Self {
        BlockEncoder {
            ltree: Tree::new(HEAP_SIZE),
            dtree: Tree::new(2 * D_CODES + 1),
            bltree: Tree::new(2 * BL_CODES + 1),
            bl_count: [0; MAX_BITS + 1],
            heap: [0; HEAP_SIZE],
            heap_len: 0,
            heap_max: 0,
            depth: [0; HEAP_SIZE],
            opt_len: 0,
            static_len: 0,
        }
    }

    fn tree(&mut self, w: Which) -> &mut Tree {
        match w {
            Which::L => &mut self.ltree,
            Which::D => &mut self.dtree,
            Which::Bl => &mut self.bltree,
        }
    }

    /// Reset frequencies (zlib's `init_block`).
    fn init_block(&mut self) {
        self.ltree.freq[..L_CODES].iter_mut().for_each(|f| *f = 0);
        self.dtree.freq[..D_CODES].iter_mut().for_each(|f| *f = 0);
        self.bltree.freq[..BL_CODES].iter_mut().for_each(|f| *f = 0);
        self.ltree.freq[END_BLOCK] = 1;
        self.opt_len = 0;
        self.static_len = 0;
    }

    fn count<'a>(&mut self, pieces: impl Iterator<Item = &'a [Sym]>) {
        let lf = &mut self.ltree.freq[..L_CODES];
        let df = &mut self.dtree.freq[..D_CODES];
        for piece in pieces {
            for &s in piece {
                let dist = (s >> 8) as usize;
                let lc = (s & 255) as usize;
                if dist == 0 {
                    lf[lc] += 1;
                } else {
                    lf[CODES.length_code[lc] as usize + LITERALS + 1] += 1;
                    df[d_code(dist - 1)] += 1;
                }
            }
        }
    }

    #[inline]
    fn smaller(tree: &Tree, depth: &[u8; HEAP_SIZE], n: usize, m: usize) -> bool {
        tree.freq[n] < tree.freq[m] || (tree.freq[n] == tree.freq[m] && depth[n] <= depth[m])
    }

    fn pqdownheap(&mut self, w: Which, mut k: usize) {
        let heap_len = self.heap_len;
        let tree = match w {
            Which::L => &self.ltree,
            Which::D => &self.dtree,
            Which::Bl => &self.bltree,
        };
        let heap = &mut self.heap;
        let depth = &self.depth;
        let v = heap[k];
        let mut j = k << 1;
        while j <= heap_len {
            if j < heap_len && Self::smaller(tree, depth, heap[j + 1], heap[j]) {
                j += 1;
            }
            if Self::smaller(tree, depth, v, heap[j]) {
                break;
            }
            heap[k] = heap[j];
            k = j;
            j <<= 1;
        }
        heap[k] = v;
    }

    fn gen_bitlen(&mut self, w: Which, kind: &TreeKind) {
        let max_code = self.tree(w).max_code;
        let mut overflow = 0i32;
        self.bl_count = [0; MAX_BITS + 1];
        let heap_max = self.heap_max;
        let root = self.heap[heap_max];
        let (tree, heap, bl_count) = match w {
            Which::L => (&mut self.ltree, &self.heap, &mut self.bl_count),
            Which::D => (&mut self.dtree, &self.heap, &mut self.bl_count),
            Which::Bl => (&mut self.bltree, &self.heap, &mut self.bl_count),
        };
        tree.len[root] = 0;
        let mut opt = 0u64;
        let mut stat = 0u64;
        for &n in &heap[heap_max + 1..HEAP_SIZE] {
            let mut bits = tree.len[tree.dad[n] as usize] as usize + 1;
            if bits > kind.max_length {
                bits = kind.max_length;
                overflow += 1;
            }
            tree.len[n] = bits as u16;
            if n as isize > max_code {
                continue;
            }
            bl_count[bits] += 1;
            let xbits = if n >= kind.extra_base {
                kind.extra[n - kind.extra_base] as usize
            } else {
                0
            };
            let f = u64::from(tree.freq[n]);
            opt = opt.wrapping_add(f * (bits + xbits) as u64);
            if let Some(sl) = kind.static_len {
                stat = stat.wrapping_add(f * (sl[n] as usize + xbits) as u64);
            }
        }
        self.opt_len = self.opt_len.wrapping_add(opt);
        self.static_len = self.static_len.wrapping_add(stat);
        if overflow == 0 {
            return;
        }
        // Find the first bit length which could increase.
        loop {
            let mut bits = kind.max_length - 1;
            while bl_count[bits] == 0 {
                bits -= 1;
            }
            bl_count[bits] -= 1;
            bl_count[bits + 1] += 2;
            bl_count[kind.max_length] -= 1;
            overflow -= 2;
            if overflow <= 0 {
                break;
            }
        }
        // Recompute all bit lengths, scanning in increasing frequency.
        let mut h = HEAP_SIZE;
        let mut opt_delta = 0u64;
        for bits in (1..=kind.max_length).rev() {
            let mut n = bl_count[bits];
            while n != 0 {
                h -= 1;
                let m = heap[h];
                if m as isize > max_code {
                    continue;
                }
                if tree.len[m] as usize != bits {
                    opt_delta = opt_delta.wrapping_add(
                        (bits as u64)
                            .wrapping_sub(u64::from(tree.len[m]))
                            .wrapping_mul(u64::from(tree.freq[m])),
                    );
                    tree.len[m] = bits as u16;
                }
                n -= 1;
            }
        }
        self.opt_len = self.opt_len.wrapping_add(opt_delta);
    }

    fn gen_codes(tree: &mut Tree, max_code: isize, bl_count: &[u16; MAX_BITS + 1]) {
        let mut next_code = [0u16; MAX_BITS + 1];
        let mut code = 0u32;
        for bits in 1..=MAX_BITS {
            code = (code + u32::from(bl_count[bits - 1])) << 1;
            next_code[bits] = code as u16;
        }
        for n in 0..(max_code + 1).max(0) as usize {
            let len = tree.len[n] as usize;
            if len == 0 {
                continue;
            }
            tree.code[n] = bit_reverse(u32::from(next_code[len]), len as u32) as u16;
            next_code[len] = next_code[len].wrapping_add(1);
        }
    }

    fn build_tree(&mut self, w: Which, kind: &TreeKind) {
        let elems = kind.elems;
        self.heap_len = 0;
        self.heap_max = HEAP_SIZE;
        let mut max_code: isize = -1;
        {
            let (tree, heap, depth) = match w {
                Which::L => (&mut self.ltree, &mut self.heap, &mut self.depth),
                Which::D => (&mut self.dtree, &mut self.heap, &mut self.depth),
                Which::Bl => (&mut self.bltree, &mut self.heap, &mut self.depth),
            };
            #[allow(clippy::needless_range_loop)] // index shared by three arrays
            for n in 0..elems {
                if tree.freq[n] != 0 {
                    self.heap_len += 1;
                    heap[self.heap_len] = n;
                    max_code = n as isize;
                    depth[n] = 0;
                } else {
                    tree.len[n] = 0;
                }
            }
            // Force at least two codes of non-zero frequency.
            while self.heap_len < 2 {
                let node = if max_code < 2 {
                    max_code += 1;
                    max_code as usize
                } else {
                    0
                };
                self.heap_len += 1;
                heap[self.heap_len] = node;
                tree.freq[node] = 1;
                depth[node] = 0;
                self.opt_len = self.opt_len.wrapping_sub(1);
                if let Some(sl) = kind.static_len {
                    self.static_len = self.static_len.wrapping_sub(u64::from(sl[node]));
                }
            }
            tree.max_code = max_code;
        }
        for n in (1..=self.heap_len / 2).rev() {
            self.pqdownheap(w, n);
        }
        let mut node = elems;
        loop {
            // pqremove
            let n = self.heap[1];
            self.heap[1] = self.heap[self.heap_len];
            self.heap_len -= 1;
            self.pqdownheap(w, 1);
            let m = self.heap[1];
            self.heap_max -= 1;
            self.heap[self.heap_max] = n;
            self.heap_max -= 1;
            self.heap[self.heap_max] = m;
            {
                let depth = &mut self.depth;
                let tree = match w {
                    Which::L => &mut self.ltree,
                    Which::D => &mut self.dtree,
                    Which::Bl => &mut self.bltree,
                };
                tree.freq[node] = tree.freq[n] + tree.freq[m];
                depth[node] = depth[n].max(depth[m]).wrapping_add(1);
                tree.dad[n] = node as u16;
                tree.dad[m] = node as u16;
            }
            self.heap[1] = node;
            node += 1;
            self.pqdownheap(w, 1);
            if self.heap_len < 2 {
                break;
            }
        }
        self.heap_max -= 1;
        self.heap[self.heap_max] = self.heap[1];
        self.gen_bitlen(w, kind);
        let bl_count = self.bl_count;
        let tree = self.tree(w);
        Self::gen_codes(tree, max_code, &bl_count);
    }

    /// Iterate over the run-length coding of a tree's code lengths (zlib's `scan_tree` and
    /// `send_tree` share this walk). Calls `f(kind, count)` where `kind` is a code length
    /// emitted `count` times individually, or one of the repeat codes with its count.
    fn walk_tree(len: &[u16], max_code: isize, mut f: impl FnMut(Emit)) {
        let mut prevlen: i32 = -1;
        let mut nextlen: i32 = i32::from(len[0]);
        let mut count = 0i32;
        let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };
        if max_code < 0 {
            return;
        }
        let max_code = max_code as usize;
        for n in 0..=max_code {
            let curlen = nextlen;
            nextlen = if n + 1 > max_code {
                0xffff
            } else {
                i32::from(len[n + 1])
            };
            count += 1;
            if count < max_count && curlen == nextlen {
                continue;
            } else if count < min_count {
                f(Emit::Lengths(curlen as usize, count as u32));
            } else if curlen != 0 {
                if curlen != prevlen {
                    f(Emit::Lengths(curlen as usize, 1));
                    count -= 1;
                }
                f(Emit::Rep(count as u32));
            } else if count <= 10 {
                f(Emit::Zeros3(count as u32));
            } else {
                f(Emit::Zeros11(count as u32));
            }
            count = 0;
            prevlen = curlen;
            if nextlen == 0 {
                max_count = 138;
                min_count = 3;
            } else if curlen == nextlen {
                max_count = 6;
                min_count = 3;
            } else {
                max_count = 7;
                min_count = 4;
            }
        }
    }

    fn scan_tree(&mut self, w: Which) {
        let (tree, bl) = match w {
            Which::L => (&self.ltree, &mut self.bltree),
            _ => (&self.dtree, &mut self.bltree),
        };
        Self::walk_tree(&tree.len, tree.max_code, |e| match e {
            Emit::Lengths(l, c) => bl.freq[l] += c,
            Emit::Rep(_) => bl.freq[REP_3_6] += 1,
            Emit::Zeros3(_) => bl.freq[REPZ_3_10] += 1,
            Emit::Zeros11(_) => bl.freq[REPZ_11_138] += 1,
        });
    }

    fn send_tree(&self, w: Which, max_code: isize, out: &mut BitWriter) {
        let tree = match w {
            Which::L => &self.ltree,
            _ => &self.dtree,
        };
        let bl = &self.bltree;
        let code =
            |out: &mut BitWriter, c: usize| out.send(u32::from(bl.code[c]), u32::from(bl.len[c]));
        Self::walk_tree(&tree.len, max_code, |e| match e {
            Emit::Lengths(l, c) => {
                for _ in 0..c {
                    code(out, l);
                }
            }
            Emit::Rep(c) => {
                code(out, REP_3_6);
                out.send(c - 3, 2);
            }
            Emit::Zeros3(c) => {
                code(out, REPZ_3_10);
                out.send(c - 3, 3);
            }
            Emit::Zeros11(c) => {
                code(out, REPZ_11_138);
                out.send(c - 11, 7);
            }
        });
    }

    fn build_bl_tree(&mut self) -> usize {
        self.scan_tree(Which::L);
        self.scan_tree(Which::D);
        self.build_tree(Which::Bl, &BL_KIND);
        let mut max_blindex = BL_CODES - 1;
        while max_blindex >= 3 {
            if self.bltree.len[BL_ORDER[max_blindex] as usize] != 0 {
                break;
            }
            max_blindex -= 1;
        }
        self.opt_len = self
            .opt_len
            .wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);
        max_blindex
    }

    fn compress_symbols<'a>(
        out: &mut BitWriter,
        pieces: impl Iterator<Item = &'a [Sym]>,
        lcode: &[u16],
        llen: &[u16],
        dcode: &[u16],
        dlen: &[u16],
    ) {
        for piece in pieces {
            for &s in piece {
                let dist = (s >> 8) as usize;
                let lc = (s & 255) as usize;
                if dist == 0 {
                    out.send(u32::from(lcode[lc]), u32::from(llen[lc]));
                } else {
                    let code = CODES.length_code[lc] as usize;
                    let sym = code + LITERALS + 1;
                    let extra = u32::from(EXTRA_LBITS[code]);
                    let n = u32::from(llen[sym]);
                    let v = u32::from(lcode[sym])
                        | (((lc - CODES.base_length[code] as usize) as u32) << n);
                    out.send(v, n + extra);
                    let d = dist - 1;
                    let dc = d_code(d);
                    let n = u32::from(dlen[dc]);
                    let v =
                        u32::from(dcode[dc]) | (((d - CODES.base_dist[dc] as usize) as u32) << n);
                    out.send(v, n + u32::from(EXTRA_DBITS[dc]));
                }
            }
        }
        out.send(u32::from(lcode[END_BLOCK]), u32::from(llen[END_BLOCK]));
    }

    /// Encode one block exactly like zlib's `_tr_flush_block` (level > 0). The final byte
    /// alignment after the last block (`bi_windup`) is left to the caller.
    ///
    /// `pieces` are the block's symbols; `stored` is the block's raw bytes when zlib could
    /// still emit it as a stored block (its start had not slid out of the window), else
    /// `None`; `stored_len` is the number of input bytes the block covers.
    pub(crate) fn encode_block<'a, I>(
        &mut self,
        out: &mut BitWriter,
        pieces: I,
        stored: Option<&[u8]>,
        stored_len: usize,
        last: bool,
    ) -> BlockKind
    where
        I: Iterator<Item = &'a [Sym]> + Clone,
    {
        self.init_block();
        self.count(pieces.clone());
        self.build_tree(Which::L, &L_KIND);
        self.build_tree(Which::D, &D_KIND);
        let max_blindex = self.build_bl_tree();
        let mut opt_lenb = (self.opt_len.wrapping_add(3 + 7)) >> 3;
        let static_lenb = (self.static_len.wrapping_add(3 + 7)) >> 3;
        if static_lenb <= opt_lenb {
            opt_lenb = static_lenb;
        }
        let last_bit = u32::from(last);
        match stored {
            Some(raw) if stored_len as u64 + 4 <= opt_lenb => {
                debug_assert_eq!(raw.len(), stored_len);
                write_stored_block(out, raw, last);
                BlockKind::Stored
            }
            _ if static_lenb == opt_lenb => {
                out.send(2 + last_bit, 3);
                Self::compress_symbols(
                    out,
                    pieces,
                    &STATIC_LTREE.code,
                    &STATIC_LTREE.len,
                    &STATIC_DTREE.code,
                    &STATIC_DTREE.len,
                );
                BlockKind::Fixed
            }
            _ => {
                out.send(4 + last_bit, 3);
                let lcodes = self.ltree.max_code + 1;
                let dcodes = self.dtree.max_code + 1;
                let blcodes = max_blindex + 1;
                out.send((lcodes - 257) as u32, 5);
                out.send((dcodes - 1) as u32, 5);
                out.send((blcodes - 4) as u32, 4);
                for &r in &BL_ORDER[..blcodes] {
                    out.send(u32::from(self.bltree.len[r as usize]), 3);
                }
                self.send_tree(Which::L, lcodes - 1, out);
                self.send_tree(Which::D, dcodes - 1, out);
                Self::compress_symbols(
                    out,
                    pieces,
                    &self.ltree.code,
                    &self.ltree.len,
                    &self.dtree.code,
                    &self.dtree.len,
                );
                BlockKind::Dynamic
            }
        }
    }
}

/// Write a stored block (zlib's `_tr_stored_block`): 3 header bits, byte alignment, LEN,
/// NLEN, raw bytes.
pub(crate) fn write_stored_block(out: &mut BitWriter, raw: &[u8], last: bool) {
    out.send(u32::from(last), 3);
    out.align();
    let len = raw.len() as u16;
    out.put_bytes(&len.to_le_bytes());
    out.put_bytes(&(!len).to_le_bytes());
    out.put_bytes(raw);
}

/// One step of the run-length coding of code lengths.
#[derive(Clone, Copy)]
enum Emit {
    /// Code length `.0` sent `.1` times individually.
    Lengths(usize, u32),
    /// REP_3_6 with the repeat count.
    Rep(u32),
    /// REPZ_3_10 with the repeat count.
    Zeros3(u32),
    /// REPZ_11_138 with the repeat count.
    Zeros11(u32),
}
