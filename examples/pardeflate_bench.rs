//! Benchmark: stock zlib (libz-sys) vs `pardeflate` single-threaded vs `pardeflate` parallel.
//!
//! Usage: `cargo run --release --example pardeflate_bench -- FILE [LEVEL] [MEMLEVEL] [THREADS...]`
//! (defaults: level 9, memLevel 9, threads 2). Gzip wrapper. Verifies that all outputs are
//! byte-identical and prints wall-clock times.

#[path = "../tests/support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{deflate, deflate_parallel, Wrapper};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: pardeflate_bench FILE [LEVEL] [MEMLEVEL] [THREADS...]");
    let level: u32 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(9);
    let mem: u32 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(9);
    let threads: Vec<usize> = if args.len() > 4 {
        args[4..].iter().map(|s| s.parse().unwrap()).collect()
    } else {
        vec![2]
    };
    // ONLY=zlib|seq|par runs one variant (for `perf stat` / `time`).
    let only = std::env::var("ONLY").ok();
    match only.as_deref() {
        Some("zlib") => {
            let data = std::fs::read(path).expect("read input");
            let z = zlib_ref::zlib_deflate(&data, Wrapper::Gzip, level as i32, mem as i32, 4096);
            println!("zlib {} bytes", z.len());
            return;
        }
        Some("seq") => {
            let data = std::fs::read(path).expect("read input");
            println!(
                "seq {} bytes",
                deflate(&data, Wrapper::Gzip, level, mem).len()
            );
            return;
        }
        Some("par") => {
            let data = std::fs::read(path).expect("read input");
            let out = deflate_parallel(&data, Wrapper::Gzip, level, mem, threads[0]);
            println!("par {} bytes", out.len());
            // OUT=path: keep the output (e.g. to compare with a reference .gz).
            if let Some(o) = std::env::var_os("OUT") {
                std::fs::write(o, &out).expect("write OUT");
            }
            return;
        }
        _ => {}
    }
    // ROUNDS=n: interleave n rounds of zlib / 1 thread / each thread count and report the
    // minimum wall time of each (the machine may be shared; the minimum is the least disturbed).
    if let Some(rounds) = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        return rounds_mode(path, level, mem, &threads, rounds);
    }
    let skip_zlib = std::env::var_os("SKIP_ZLIB").is_some();
    let data = std::fs::read(path).expect("read input");
    println!(
        "input {path}: {} bytes, level {level}, memLevel {mem}, gzip",
        data.len()
    );

    let reference = if skip_zlib {
        None
    } else {
        let t = Instant::now();
        let z = zlib_ref::zlib_deflate(&data, Wrapper::Gzip, level as i32, mem as i32, 4096);
        let dt = t.elapsed().as_secs_f64();
        println!("stock zlib          : {dt:8.3} s  ({} bytes)", z.len());
        Some((z, dt))
    };
    let t = Instant::now();
    let ours = deflate(&data, Wrapper::Gzip, level, mem);
    let dt1 = t.elapsed().as_secs_f64();
    let same = reference.as_ref().map(|(z, _)| *z == ours);
    let ratio = reference
        .as_ref()
        .map(|(_, z)| format!("{:.3}x zlib", dt1 / z))
        .unwrap_or_default();
    println!("pardeflate 1 thread : {dt1:8.3} s  {ratio}  identical: {same:?}");
    for &n in &threads {
        let t = Instant::now();
        let par = deflate_parallel(&data, Wrapper::Gzip, level, mem, n);
        let dt = t.elapsed().as_secs_f64();
        let ratio = reference
            .as_ref()
            .map(|(_, z)| format!("{:.3}x zlib", dt / z))
            .unwrap_or_default();
        println!(
            "pardeflate {n} threads: {dt:8.3} s  {ratio}  identical: {}",
            par == ours
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn rounds_mode(path: &str, level: u32, mem: u32, threads: &[usize], rounds: usize) {
    let data = std::fs::read(path).expect("read input");
    println!(
        "input {path}: {} bytes, level {level}, memLevel {mem}, gzip, {rounds} rounds",
        data.len()
    );
    let reference = zlib_ref::zlib_deflate(&data, Wrapper::Gzip, level as i32, mem as i32, 4096);
    let mut names = vec!["stock zlib".to_string(), "pardeflate 1 thread".to_string()];
    names.extend(threads.iter().map(|n| format!("pardeflate {n} threads")));
    let mut best = vec![f64::INFINITY; names.len()];
    for r in 0..rounds {
        let mut line = format!("round {r} (load {})", loadavg());
        for (i, best) in best.iter_mut().enumerate() {
            let t = Instant::now();
            let out = match i {
                0 => zlib_ref::zlib_deflate(&data, Wrapper::Gzip, level as i32, mem as i32, 4096),
                1 => deflate(&data, Wrapper::Gzip, level, mem),
                _ => deflate_parallel(&data, Wrapper::Gzip, level, mem, threads[i - 2]),
            };
            let dt = t.elapsed().as_secs_f64();
            assert!(
                out == reference,
                "{}: output differs from stock zlib",
                names[i]
            );
            *best = best.min(dt);
            line += &format!("  {dt:.3}");
        }
        println!("{line}");
    }
    println!(
        "minimum over {rounds} rounds (all outputs identical to stock zlib, {} bytes):",
        reference.len()
    );
    for (name, b) in names.iter().zip(&best) {
        println!("  {name:<22} {b:8.3} s  {:.3}x zlib", b / best[0]);
    }
}
