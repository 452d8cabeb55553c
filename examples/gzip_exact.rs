//! Check that `pardeflate` reproduces GNU gzip: for each FILE and level, compare the deflate
//! stream of `gzip -<level> -n -c FILE` with [`adudiffapi::pardeflate::deflate_as`] and its
//! parallel form, and print the first differing byte if any.
//!
//! `cargo run --release --example gzip_exact -- [-1..-9]... FILE...` (default level 9).

use std::process::Command;
use std::time::Instant;

use adudiffapi::pardeflate::{deflate_as, deflate_parallel_as, Encoder, ParallelOptions, Wrapper};

fn main() {
    let mut levels = Vec::new();
    let mut files = Vec::new();
    for a in std::env::args().skip(1) {
        match a.strip_prefix('-').and_then(|l| l.parse::<u32>().ok()) {
            Some(l) => levels.push(l),
            None => files.push(a),
        }
    }
    if levels.is_empty() {
        levels.push(9);
    }
    let mut bad = 0;
    for f in &files {
        let data = std::fs::read(f).expect("read input");
        for &level in &levels {
            let gz = Command::new("gzip")
                .args([format!("-{level}").as_str(), "-n", "-c", f])
                .output()
                .expect("run gzip");
            let want = &gz.stdout[10..gz.stdout.len() - 8];
            let t = Instant::now();
            let got = deflate_as(&data, Wrapper::Raw, level, Encoder::GnuGzip);
            let t_seq = t.elapsed();
            let t = Instant::now();
            let par = deflate_parallel_as(
                &data,
                Wrapper::Raw,
                level,
                Encoder::GnuGzip,
                &ParallelOptions::default(),
            );
            let t_par = t.elapsed();
            let diff = |a: &[u8]| a.iter().zip(want).position(|(x, y)| x != y);
            let same = got == want && par == want;
            if !same {
                bad += 1;
            }
            println!(
                "{f} -{level}: {} ({} B; sequential {} B{}, parallel {} B{}; {:.2?} / {:.2?})",
                if same { "identical" } else { "DIFFERENT" },
                want.len(),
                got.len(),
                diff(&got).map_or(String::new(), |p| format!(" differs at {p}")),
                par.len(),
                diff(&par).map_or(String::new(), |p| format!(" differs at {p}")),
                t_seq,
                t_par
            );
        }
    }
    std::process::exit(i32::from(bad > 0));
}
