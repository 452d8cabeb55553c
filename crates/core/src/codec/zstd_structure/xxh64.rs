//! XXH64 (seed 0), whose low 32 bits are a zstd frame's content checksum.

const PRIME1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(accumulator: u64, input: u64) -> u64 {
    accumulator
        .wrapping_add(input.wrapping_mul(PRIME2))
        .rotate_left(31)
        .wrapping_mul(PRIME1)
}

fn merge(hash: u64, accumulator: u64) -> u64 {
    (hash ^ round(0, accumulator))
        .wrapping_mul(PRIME1)
        .wrapping_add(PRIME4)
}

fn word(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(array)
}

/// XXH64 of `data` with seed 0.
pub fn xxh64(data: &[u8]) -> u64 {
    let stripes = data.chunks_exact(32);
    let tail = stripes.remainder();
    let mut hash = if data.len() >= 32 {
        let mut lanes = [
            PRIME1.wrapping_add(PRIME2),
            PRIME2,
            0,
            0u64.wrapping_sub(PRIME1),
        ];
        for stripe in stripes {
            for (lane, chunk) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, word(chunk));
            }
        }
        let mut hash = lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18));
        for lane in lanes {
            hash = merge(hash, lane);
        }
        hash
    } else {
        PRIME5
    };
    hash = hash.wrapping_add(data.len() as u64);
    finish(hash, tail)
}

fn finish(mut hash: u64, tail: &[u8]) -> u64 {
    let mut words = tail.chunks_exact(8);
    for chunk in &mut words {
        hash ^= round(0, word(chunk));
        hash = hash
            .rotate_left(27)
            .wrapping_mul(PRIME1)
            .wrapping_add(PRIME4);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        let half = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        hash ^= u64::from(half).wrapping_mul(PRIME1);
        hash = hash
            .rotate_left(23)
            .wrapping_mul(PRIME2)
            .wrapping_add(PRIME3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(PRIME5);
        hash = hash.rotate_left(11).wrapping_mul(PRIME1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME3);
    hash ^ (hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_value_of_the_empty_input() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
    }
}
