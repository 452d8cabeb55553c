//! Times the extended format's deflate correction codec on one gzip file:
//! `cargo run --release --example deflate_reconstruct_bench -- FILE.gz`
//! prints the analysis (generator side) and the streaming rebuild (applier side, the same
//! reader the recipe uses) with sizes and seconds; peak RSS via `/usr/bin/time -v`.

use std::io::Read;
use std::time::Instant;

use adudiff_gen::generate::gzrebuild::{analyse, Piece};
use adudiffapi::codec::deflate_reconstruct::reader;
use adudiffapi::io::SharedBytes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: deflate_reconstruct_bench FILE.gz")?;
    let gz = std::fs::read(&path)?;
    let t = Instant::now();
    let r = analyse(&gz).ok_or("the codec cannot describe this file")?;
    let analyse_s = t.elapsed().as_secs_f64();
    println!(
        "{path}: {} B gzip, {} B plain, {} B corrections; analyse {analyse_s:.2} s",
        gz.len(),
        r.plain.len(),
        r.correction_bytes()
    );
    let t = Instant::now();
    let mut rebuilt = 0u64;
    for piece in &r.pieces {
        let Piece::Deflate {
            plain,
            stream,
            codec,
            corrections,
        } = piece
        else {
            continue;
        };
        let mut reader = reader(
            Box::new(std::io::Cursor::new(r.plain[plain.clone()].to_vec())),
            plain.len() as u64,
            SharedBytes::from_vec(corrections.clone()),
            codec.0,
            codec.1,
            stream.len() as u64,
        )?;
        let mut out = Vec::with_capacity(stream.len());
        reader.read_to_end(&mut out)?;
        if out[..] != gz[stream.clone()] {
            return Err("rebuilt stream differs".into());
        }
        rebuilt += out.len() as u64;
    }
    let rebuild_s = t.elapsed().as_secs_f64();
    println!(
        "rebuild {rebuilt} B in {rebuild_s:.2} s ({:.1} MB/s of plain text)",
        r.plain.len() as f64 / rebuild_s / 1e6
    );
    Ok(())
}
