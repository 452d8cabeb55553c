//! CRC-32 (gzip) and Adler-32 (zlib) with `combine` operations, so that checksums of pieces
//! computed on different threads can be joined. The combine math follows zlib's `crc32.c`
//! (`multmodp`/`x2nmodp`) and `adler32.c`.

const POLY: u32 = 0xedb8_8320;

const fn crc_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    n = 0;
    while n < 256 {
        let mut c = t[0][n];
        let mut k = 1;
        while k < 16 {
            c = t[0][(c & 0xff) as usize] ^ (c >> 8);
            t[k][n] = c;
            k += 1;
        }
        n += 1;
    }
    t
}

static CRC_TABLES: [[u32; 256]; 16] = crc_tables();

/// Update a CRC-32 (as used by gzip) with `data`. Start from 0.
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !crc;
    let mut chunks = data.chunks_exact(16);
    for ch in &mut chunks {
        let a = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        c = t[15][(a & 0xff) as usize]
            ^ t[14][((a >> 8) & 0xff) as usize]
            ^ t[13][((a >> 16) & 0xff) as usize]
            ^ t[12][(a >> 24) as usize]
            ^ t[11][ch[4] as usize]
            ^ t[10][ch[5] as usize]
            ^ t[9][ch[6] as usize]
            ^ t[8][ch[7] as usize]
            ^ t[7][ch[8] as usize]
            ^ t[6][ch[9] as usize]
            ^ t[5][ch[10] as usize]
            ^ t[4][ch[11] as usize]
            ^ t[3][ch[12] as usize]
            ^ t[2][ch[13] as usize]
            ^ t[1][ch[14] as usize]
            ^ t[0][ch[15] as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Multiply `a` and `b` modulo the CRC polynomial (reflected representation).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(n * 2^k) modulo the CRC polynomial.
fn x2nmodp(mut n: u64, mut k: u32) -> u32 {
    // x^(2^j) for j = 0..32, computed on the fly (cheap: 32 multiplications).
    let mut table = [0u32; 32];
    let mut p = 1u32 << 30; // x^1
    table[0] = p;
    for e in table.iter_mut().skip(1) {
        p = multmodp(p, p);
        *e = p;
    }
    let mut p = 1u32 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(table[(k & 31) as usize], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// CRC-32 of the concatenation A‖B from `crc1` = crc(A), `crc2` = crc(B) and `len2` = |B|.
pub fn crc32_combine(crc1: u32, crc2: u32, len2: u64) -> u32 {
    multmodp(x2nmodp(len2, 3), crc1) ^ crc2
}

const ADLER_BASE: u32 = 65521;
/// Largest n such that 255n(n+1)/2 + (n+1)(BASE-1) ≤ 2^32 − 1 (zlib's NMAX).
const ADLER_NMAX: usize = 5552;

/// Update an Adler-32 (as used by the zlib wrapper) with `data`. Start from 1.
pub fn adler32(adler: u32, data: &[u8]) -> u32 {
    let mut a = adler & 0xffff;
    let mut b = adler >> 16;
    for block in data.chunks(ADLER_NMAX) {
        for &x in block {
            a += u32::from(x);
            b += a;
        }
        a %= ADLER_BASE;
        b %= ADLER_BASE;
    }
    (b << 16) | a
}

/// Adler-32 of A‖B from `adler1` = adler(A), `adler2` = adler(B) and `len2` = |B|.
pub fn adler32_combine(adler1: u32, adler2: u32, len2: u64) -> u32 {
    let base = u64::from(ADLER_BASE);
    let rem = len2 % base;
    let mut sum1 = u64::from(adler1 & 0xffff);
    let mut sum2 = (rem * sum1) % base;
    sum1 += u64::from(adler2 & 0xffff) + base - 1;
    sum2 += u64::from((adler1 >> 16) & 0xffff) + u64::from((adler2 >> 16) & 0xffff) + base - rem;
    if sum1 >= base {
        sum1 -= base;
    }
    if sum1 >= base {
        sum1 -= base;
    }
    if sum2 >= base << 1 {
        sum2 -= base << 1;
    }
    if sum2 >= base {
        sum2 -= base;
    }
    (sum1 | (sum2 << 16)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(crc32(0, b""), 0);
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(1, b""), 1);
        assert_eq!(adler32(1, b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn combine_matches_whole() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for split in [0usize, 1, 15, 16, 17, 5552, 5553, 65_536, 99_999, 100_000] {
            let (a, b) = data.split_at(split);
            assert_eq!(
                crc32_combine(crc32(0, a), crc32(0, b), b.len() as u64),
                crc32(0, &data)
            );
            assert_eq!(
                adler32_combine(adler32(1, a), adler32(1, b), b.len() as u64),
                adler32(1, &data)
            );
        }
        // Byte-wise and sliced paths agree.
        let mut c = 0;
        for &x in &data[..1000] {
            c = crc32(c, &[x]);
        }
        assert_eq!(c, crc32(0, &data[..1000]));
    }
}
