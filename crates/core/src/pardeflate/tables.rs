//! Constant tables of the deflate format (RFC 1951) laid out the way zlib's `trees.c` builds
//! them: length/distance code maps, extra-bit counts, and the fixed ("static") Huffman trees.
//!
//! Everything is computed at compile time by `const fn`s.

/// Smallest match length.
pub(crate) const MIN_MATCH: usize = 3;
/// Largest match length.
pub(crate) const MAX_MATCH: usize = 258;
/// Number of length codes, not counting the end-of-block code.
pub(crate) const LENGTH_CODES: usize = 29;
/// Number of literal byte values.
pub(crate) const LITERALS: usize = 256;
/// Literal/length alphabet size including END_BLOCK.
pub(crate) const L_CODES: usize = LITERALS + 1 + LENGTH_CODES;
/// Distance alphabet size.
pub(crate) const D_CODES: usize = 30;
/// Bit-length alphabet size.
pub(crate) const BL_CODES: usize = 19;
/// Longest code of the literal and distance trees.
pub(crate) const MAX_BITS: usize = 15;
/// Longest code of the bit-length tree.
pub(crate) const MAX_BL_BITS: usize = 7;
/// The end-of-block symbol.
pub(crate) const END_BLOCK: usize = 256;
/// Repeat previous bit length 3-6 times (2 bits of repeat count).
pub(crate) const REP_3_6: usize = 16;
/// Repeat a zero length 3-10 times (3 bits of repeat count).
pub(crate) const REPZ_3_10: usize = 17;
/// Repeat a zero length 11-138 times (7 bits of repeat count).
pub(crate) const REPZ_11_138: usize = 18;

/// Extra bits for each length code.
pub(crate) const EXTRA_LBITS: [u8; LENGTH_CODES] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Extra bits for each distance code.
pub(crate) const EXTRA_DBITS: [u8; D_CODES] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Extra bits for each bit-length code.
pub(crate) const EXTRA_BLBITS: [u8; BL_CODES] =
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
/// Order in which the bit-length code lengths are transmitted.
pub(crate) const BL_ORDER: [u8; BL_CODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Code tables derived from the extra-bit counts.
pub(crate) struct CodeTables {
    /// Match length − 3 (0..=255) → length code (0..=28).
    pub length_code: [u8; 256],
    /// First (length − 3) of each length code.
    pub base_length: [u16; LENGTH_CODES],
    /// Distance − 1 → distance code, split as in zlib: entries 0..256 for small distances,
    /// 256..512 for `(distance − 1) >> 7`.
    pub dist_code: [u8; 512],
    /// First (distance − 1) of each distance code.
    pub base_dist: [u16; D_CODES],
}

const fn build_code_tables() -> CodeTables {
    let mut t = CodeTables {
        length_code: [0; 256],
        base_length: [0; LENGTH_CODES],
        dist_code: [0; 512],
        base_dist: [0; D_CODES],
    };
    let mut length = 0usize;
    let mut code = 0usize;
    while code < LENGTH_CODES - 1 {
        t.base_length[code] = length as u16;
        let mut n = 0;
        while n < (1 << EXTRA_LBITS[code]) {
            t.length_code[length] = code as u8;
            length += 1;
            n += 1;
        }
        code += 1;
    }
    // Length 258 (index 255) uses code 285 (index 28), not 284 + 31.
    t.length_code[length - 1] = code as u8;
    // zlib's table holds 0 for code 28; it has no extra bits, and 255 makes
    // `lc - base_length[code]` zero for it like for every other code.
    t.base_length[LENGTH_CODES - 1] = 255;
    let mut dist = 0usize;
    code = 0;
    while code < 16 {
        t.base_dist[code] = dist as u16;
        let mut n = 0;
        while n < (1 << EXTRA_DBITS[code]) {
            t.dist_code[dist] = code as u8;
            dist += 1;
            n += 1;
        }
        code += 1;
    }
    dist >>= 7;
    while code < D_CODES {
        t.base_dist[code] = (dist << 7) as u16;
        let mut n = 0;
        while n < (1 << (EXTRA_DBITS[code] - 7)) {
            t.dist_code[256 + dist] = code as u8;
            dist += 1;
            n += 1;
        }
        code += 1;
    }
    t
}

/// The length and distance code tables.
pub(crate) static CODES: CodeTables = build_code_tables();

/// Distance code of `dist` = match distance − 1 (zlib's `d_code`).
#[inline(always)]
pub(crate) fn d_code(dist: usize) -> usize {
    if dist < 256 {
        CODES.dist_code[dist] as usize
    } else {
        CODES.dist_code[256 + ((dist >> 7) & 255)] as usize
    }
}

/// Reverse the low `len` bits of `code`.
pub(crate) const fn bit_reverse(mut code: u32, mut len: u32) -> u32 {
    let mut res = 0u32;
    loop {
        res |= code & 1;
        code >>= 1;
        res <<= 1;
        len -= 1;
        if len == 0 {
            break;
        }
    }
    res >> 1
}

/// A Huffman code table: bit-reversed codes and their lengths.
pub(crate) struct StaticTree<const N: usize> {
    /// Bit-reversed code values, ready to send LSB first.
    pub code: [u16; N],
    /// Code lengths.
    pub len: [u16; N],
}

const fn build_static_ltree() -> StaticTree<{ L_CODES + 2 }> {
    let mut t = StaticTree {
        code: [0; L_CODES + 2],
        len: [0; L_CODES + 2],
    };
    let mut bl_count = [0u16; MAX_BITS + 1];
    let mut n = 0;
    while n <= 287 {
        let l: u16 = if n <= 143 {
            8
        } else if n <= 255 {
            9
        } else if n <= 279 {
            7
        } else {
            8
        };
        t.len[n] = l;
        bl_count[l as usize] += 1;
        n += 1;
    }
    // gen_codes over all 288 entries (codes 286 and 287 make the tree complete).
    let mut next_code = [0u16; MAX_BITS + 1];
    let mut code = 0u32;
    let mut bits = 1;
    while bits <= MAX_BITS {
        code = (code + bl_count[bits - 1] as u32) << 1;
        next_code[bits] = code as u16;
        bits += 1;
    }
    n = 0;
    while n <= 287 {
        let l = t.len[n] as usize;
        t.code[n] = bit_reverse(next_code[l] as u32, l as u32) as u16;
        next_code[l] += 1;
        n += 1;
    }
    t
}

const fn build_static_dtree() -> StaticTree<D_CODES> {
    let mut t = StaticTree {
        code: [0; D_CODES],
        len: [5; D_CODES],
    };
    let mut n = 0;
    while n < D_CODES {
        t.code[n] = bit_reverse(n as u32, 5) as u16;
        n += 1;
    }
    t
}

/// The fixed literal/length tree (288 entries).
pub(crate) static STATIC_LTREE: StaticTree<{ L_CODES + 2 }> = build_static_ltree();
/// The fixed distance tree.
pub(crate) static STATIC_DTREE: StaticTree<D_CODES> = build_static_dtree();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tables_match_zlib() {
        assert_eq!(CODES.length_code[0], 0);
        assert_eq!(CODES.length_code[255], 28);
        assert_eq!(CODES.length_code[254], 27);
        assert_eq!(CODES.base_length[27], 224);
        assert_eq!(CODES.base_length[28], 255);
        assert_eq!(CODES.base_dist[29], 24576);
        assert_eq!(d_code(0), 0);
        assert_eq!(d_code(32767), 29);
        assert_eq!(d_code(256), 16);
        // A few values from zlib's trees.h.
        assert_eq!((STATIC_LTREE.code[0], STATIC_LTREE.len[0]), (12, 8));
        assert_eq!((STATIC_LTREE.code[144], STATIC_LTREE.len[144]), (19, 9));
        assert_eq!((STATIC_LTREE.code[256], STATIC_LTREE.len[256]), (0, 7));
        assert_eq!((STATIC_LTREE.code[280], STATIC_LTREE.len[280]), (3, 8));
        assert_eq!(STATIC_DTREE.code[1], 16);
    }
}
