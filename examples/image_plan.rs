//! Runs the file-aware image planner (`generate::image`) on two raw ext2/3/4 images and writes an
//! image-only delta, for tuning: `cargo run --release --example image_plan -- SOURCE.ext4
//! TARGET.ext4 [OUT.delta]`. Settings come from the environment (defaults otherwise):
//! `IMG_DIFF_LEVEL`, `IMG_NEW_LEVEL`, `IMG_FRAME_LEVEL`, `IMG_FRAME_MB`, `IMG_MIN_CHANGED_GZ`,
//! `IMG_MIN_NEW_GZ`, `IMG_SMALL_MATCH`. Prints the planner's statistics and the delta size; with OUT, the delta is
//! also applied and checked against TARGET.

use std::time::Instant;

use adudiff_gen::generate::build::Assembly;
use adudiff_gen::generate::image::{self, ImageSettings};
use adudiff_gen::generate::progress::Counter;
use adudiffapi::format::writer::{item_of, write_delta_to_vec};

fn env_num(name: &str) -> Option<i64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: image_plan SOURCE.ext4 TARGET.ext4 [OUT.delta]".into());
    }
    let d = ImageSettings::default();
    let n = |name: &str, default: i64| env_num(name).unwrap_or(default);
    let s = ImageSettings {
        diff_level: n("IMG_DIFF_LEVEL", d.diff_level.into()) as i32,
        new_level: n("IMG_NEW_LEVEL", d.new_level.into()) as i32,
        frame_level: n("IMG_FRAME_LEVEL", d.frame_level.into()) as i32,
        frame_size: (n("IMG_FRAME_MB", (d.frame_size >> 20) as i64) as u64) << 20,
        min_changed_gz: n("IMG_MIN_CHANGED_GZ", d.min_changed_gz as i64) as u64,
        min_new_gz: n("IMG_MIN_NEW_GZ", d.min_new_gz as i64) as u64,
        bsdiff_small_match: n("IMG_SMALL_MATCH", d.bsdiff_small_match as i64) as usize,
        extended: n("IMG_EXTENDED", 0) != 0,
    };
    let source = adudiffapi::apply::map_input(args[0].as_ref())?;
    let target = adudiffapi::apply::map_input(args[1].as_ref())?;
    let started = Instant::now();
    let simg = adudiff_gen::generate::ext4::parse(&source)?;
    let timg = adudiff_gen::generate::ext4::parse(&target)?;
    let threads = adudiff_gen::generate::pool::workers();
    let (graph, stats) = image::plan(
        &target,
        &source,
        &timg,
        &simg,
        &s,
        threads,
        &Counter::default(),
    )?
    .ok_or("the planner cannot use these images")?;
    let mut asm = Assembly::default();
    let source_item = item_of(&source);
    let root = image::emit(&graph, &mut asm, &source_item);
    let recipes = asm.recipes.len();
    asm.part(root.clone());
    let builder = asm.finish(root, source_item);
    let delta = write_delta_to_vec(&builder)?;
    println!("{stats:#?}");
    println!(
        "settings {s:?}\nnodes {} recipes {recipes} payload {} delta {} bytes in {:.1} s",
        graph.nodes.len(),
        image::payload_bytes(&graph),
        delta.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(out) = args.get(2) {
        std::fs::write(out, &delta)?;
        let applied = format!("{out}.applied");
        adudiffapi::apply::apply_files(args[0].as_ref(), out.as_ref(), applied.as_ref())?;
        let same = std::fs::read(&applied)? == target[..];
        std::fs::remove_file(&applied)?;
        println!("applied: {}", if same { "byte-exact" } else { "DIFFERENT" });
        if !same {
            return Err("applied image differs".into());
        }
    }
    Ok(())
}
