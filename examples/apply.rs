//! Minimal Rust front end: `cargo run --release --example apply -- SOURCE DELTA TARGET`.
//! (The C harness in `examples/` is the agent-faithful one; this is for quick experiments.)

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 {
        eprintln!("usage: apply SOURCE DELTA TARGET");
        std::process::exit(2);
    }
    let started = std::time::Instant::now();
    match adudiffapi::apply::apply_files_with_report(
        args[0].as_ref(),
        args[1].as_ref(),
        args[2].as_ref(),
    ) {
        Ok(report) => println!("ok in {:.2?}: {report}", started.elapsed()),
        Err(e) => {
            println!("error {}: {}", e.code, e.text());
            std::process::exit(1);
        }
    }
}
