//! `adudiff`: command-line front end (apply, generate, recompress, dump, manifest).

fn main() {
    eprintln!("adudiff: under construction");
    std::process::exit(2);
}
