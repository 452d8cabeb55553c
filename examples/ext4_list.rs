//! Lists the regular files of an ext2/3/4 image with the crate's parser and times the parse:
//! `cargo run --release --example ext4_list -- IMAGE [-v | -s]`: `-v` prints every file's
//! extents, `-s` prints "sha256 size path" of every file's content read through
//! `file_ranges` (the format of the test fixtures' manifests, to compare with an extraction).

use std::time::Instant;

use sha2::{Digest, Sha256};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: ext4_list IMAGE [-v | -s]".into());
    };
    let verbose = args.iter().any(|a| a == "-v");
    let hashes = args.iter().any(|a| a == "-s");
    // Memory-maps the image (memmap2, through the crate's input helper).
    let map = adudiffapi::apply::map_input(path.as_ref())?;
    let start = Instant::now();
    let image = adudiff_gen::generate::ext4::parse(&map)?;
    let elapsed = start.elapsed();
    let bytes: u64 = image.files.iter().map(|f| f.size).sum();
    let extents: usize = image.files.iter().map(|f| f.extents.len()).sum();
    if verbose {
        for f in &image.files {
            let runs: Vec<String> = f
                .extents
                .iter()
                .map(|e| format!("({}-{}):{}", e.logical, e.logical + e.len - 1, e.physical))
                .collect();
            println!(
                "{} ino={} size={} {}",
                f.path,
                f.inode,
                f.size,
                runs.join(" ")
            );
        }
    }
    if hashes {
        let zeros = vec![0u8; 1 << 16];
        for f in &image.files {
            let mut h = Sha256::new();
            for (offset, len) in image.file_ranges(f) {
                match offset {
                    Some(o) => h.update(&map[o as usize..(o + len) as usize]),
                    None => {
                        let mut left = len;
                        while left > 0 {
                            let n = left.min(zeros.len() as u64);
                            h.update(&zeros[..n as usize]);
                            left -= n;
                        }
                    }
                }
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            println!("{digest} {} {}", f.size, f.path);
        }
    }
    println!(
        "{path}: block size {}, {} blocks, {} files, {} bytes in files, {} extents, {} skipped, parsed in {:.1} ms",
        image.block_size,
        image.blocks_count,
        image.files.len(),
        bytes,
        extents,
        image.skipped,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
