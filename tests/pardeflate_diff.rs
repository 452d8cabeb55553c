//! Differential tests: `pardeflate` against stock zlib (libz-sys, bundled madler zlib).

#[path = "support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{deflate, Wrapper};
use zlib_ref::zlib_deflate;

const WRAPPERS: [Wrapper; 3] = [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip];

/// Tiny xorshift64* PRNG (seeded, deterministic).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn check(data: &[u8], wrapper: Wrapper, level: u32, mem: u32, what: &str) {
    let want = zlib_deflate(data, wrapper, level as i32, mem as i32, usize::MAX);
    let got = deflate(data, wrapper, level, mem);
    if got != want {
        let first = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: mismatch level {level} mem {mem} {wrapper:?} len {}: got {} bytes, want {} bytes, first diff at {first}",
            data.len(),
            got.len(),
            want.len()
        );
    }
}

fn small_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("one".into(), b"a".to_vec()),
        ("two".into(), b"ab".to_vec()),
        ("three".into(), b"abc".to_vec()),
        ("hello".into(), b"hello hello hello hello world".to_vec()),
        ("zeros1k".into(), vec![0; 1000]),
        ("aaaa300".into(), vec![b'a'; 300]),
    ];
    let mut r = Rng(12345);
    let rnd: Vec<u8> = (0..5000).map(|_| r.next() as u8).collect();
    v.push(("random5k".into(), rnd));
    let text: Vec<u8> = (0..20000)
        .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44] ^ if r.below(50) == 0 { 1 } else { 0 })
        .collect();
    v.push(("text20k".into(), text));
    v
}

#[test]
fn small_inputs_all_levels_memlevels_wrappers() {
    for (name, data) in small_inputs() {
        for level in 1..=9 {
            for mem in [1, 8, 9] {
                for w in WRAPPERS {
                    check(&data, w, level, mem, &name);
                }
            }
        }
    }
}
