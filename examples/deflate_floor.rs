//! The single-thread floor of the large benchmark: stock zlib (the same bundled build the
//! applier uses) gzip-compressing a file at level 9 / memLevel 9, as the `zlib_compression`
//! recipe does. `cargo run --release --example deflate_floor -- FILE` prints bytes and seconds.

use adudiffapi::codec::deflate_exact;
use adudiffapi::format::ZlibInit;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: deflate_floor FILE")?;
    let input = adudiffapi::apply::map_input(path.as_ref())?;
    let started = std::time::Instant::now();
    let output = deflate_exact(&input, ZlibInit::Gzip, 9)?;
    println!(
        "{} bytes in {:.3} s",
        output.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
