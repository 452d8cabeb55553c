//! `adudiff`: command-line front end (generate, release, recompress, apply, dump, manifest).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adudiffapi::generate::import_manifest::{self, UpdateId};
use adudiffapi::generate::release::{self, DeltaFormat, ReleaseOptions};
use adudiffapi::generate::{self, strategy_text, DiffSettings, GenerateOptions};
use adudiffapi::recompress::{self, ImageAction, SignatureAction};

const USAGE: &str = "\
adudiff — Azure Device Update delta tool (PAMZ standard v2)

USAGE:
  adudiff generate [OPTIONS] <source.swu> <target.swu> <delta> [<log dir>] [<work dir>]
  adudiff release [OPTIONS] --out <dir> --provider <p> --name <n> --version <v> --compat <k=v,…>
                  <target.swu> <source.swu>…   (1–4 sources: deltas + v5 import manifest)
  adudiff recompress <in.swu> <out.swu> [\"<signing command>\"]
  adudiff apply <source> <delta> <target>
  adudiff dump <delta>
  adudiff manifest [--provider <name>] <source.swu>
  adudiff manifest --target <target.swu> --delta <delta> --provider <p> --name <n> --version <v>
                   --compat <k=v,…> [OPTIONS] <source.swu>   (the whole v5 import manifest)

Run `adudiff <command> --help` for details.";

const GENERATE_HELP: &str = "\
adudiff generate [OPTIONS] <source.swu> <target.swu> <delta> [<log dir>] [<work dir>]

Makes a standard-v2 delta that turns <source.swu> into <target.swu>, verifies it with the
library's applier (SHA-256 of the result must equal the target) and writes it to <delta>.

Positional forms (DiffGenTool 3.0.0 compatible):
  <source> <target> <delta> <work dir>             log folder = <work dir>/logs/<n>
  <source> <target> <delta> <log dir> <work dir>

OPTIONS:
  --format <f>         standard (default): PAMZ v2, applies on Microsoft's library too;
                       extended: the target as built (no recompress, no re-sign): gzip data
                       zlib does not reproduce travels as text + deflate corrections, zstd
                       frames this build's libzstd makes as their content. Only
                       adudiffapi applies it; devices on Microsoft's library fall back to the
                       full image. Written only where it is smaller than standard.
  --log-dir <dir>      write diff.json there
  --work-dir <dir>     temporary files (default: the delta's folder)
  --zstd-level <n>     zstd level for patch-from candidates (default 12)
  --bsdiff-max <MiB>   skip bsdiff for segments/windows larger than this (default 512)
  --segment-mb <MiB>   diff large contents in segments of this size (default 32; 0 = whole)
  --margin-mb <MiB>    basis window margin around each aligned segment (default 8)
  --bsdiff-small-match <n>  qbsdiff's small-match threshold (default 24)
  --no-files           diff ext2/3/4 images as a whole instead of file by file
  --files-diff-level <n>   zstd level for changed files and metadata (default 19)
  --files-new-level <n>    zstd level for new files (default 22)
  --files-frame-level <n>  zstd level of the image assembly frames (default 9)
  --files-frame-mb <MiB>   image bytes per assembly frame (default 32)
  --threads <n>        worker threads (default: all cores)
  -q, --quiet          no progress bars

Exit status: 0 delta written; 1 failure (including a delta not smaller than the target).";

const RECOMPRESS_HELP: &str = "\
adudiff recompress <in.swu> <out.swu> [\"<signing command>\"]

Re-gzips every gzip image listed in sw-description with zlib level 9, memLevel 9 and a fixed
header (OS byte 3) so that deltas can rebuild it byte-exactly, updates the images' sha256 in
sw-description (nothing else is re-formatted) and keeps the cpio newc/crc headers correct.
With a signing command, `<command> <path>/sw-description <path>/sw-description.sig` is run through
the shell and the .sig it writes is placed right after sw-description (added if missing);
without one, a stale sw-description.sig is removed.";

const APPLY_HELP: &str = "\
adudiff apply <source> <delta> <target>

Applies a delta with the library (same code as libadudiffapi.so); prints the error code and text
and exits 1 on failure.";

const DUMP_HELP: &str = "\
adudiff dump <delta>

Prints the delta as JSON: format, target/source items, recipes, blobs and sizes.";

const MANIFEST_HELP: &str = "\
adudiff manifest [--provider <name>] <source.swu>
adudiff manifest --target <target.swu> --delta <delta> --provider <p> --name <n> --version <v>
                 --compat <k=v,…> [IDENTITY OPTIONS] <source.swu>

First form: prints the import-manifest relatedFiles properties for a delta made against
<source.swu> (microsoft.sourceFileHashAlgorithm, microsoft.sourceFileHash = base64 SHA-256) and the
path where the Device Update agent caches that source
(/var/lib/adu/sdc/<provider>/sha256-<encoded hash>).

Second form: prints the whole version 5.0 import manifest for <target.swu> with <delta> as its
related file for <source.swu> (files are hashed, nothing is generated), checked against Device
Update's schema rules. IDENTITY OPTIONS as for `adudiff release`: --handler, --handler-property,
--handler-properties, --installed-criteria, --description, --file.";

const RELEASE_HELP: &str = "\
adudiff release [OPTIONS] --out <dir> --provider <p> --name <n> --version <v> --compat <k=v,…>
                <target.swu> <source.swu> [<source.swu>…]

From build output to an importable update: generates one delta per source (1 to 4 sources; the
target is analysed once, sources run in parallel as memory allows), verifies each by applying it,
and writes to <dir>: the target (recompressed with --recompress), the deltas
(<source>-to-<target>.delta) and <name>.importmanifest.json (Device Update import manifest 5.0,
checked against the schema's rules before it is written). A delta that is not smaller than the
target is left out of the manifest with a warning: devices on that source download the target.
Import with `az iot du update import` or the Azure portal, uploading every file of <dir>.

IDENTITY:
  --provider <p>            updateId.provider (letters, digits, '.', '-'; 1-64)
  --name <n>                updateId.name (same rules); also names the manifest file
  --version <v>             updateId.version (2-4 numbers, e.g. 1.2.0)
  --compat <k=v[,k=v…]>     one compatibility set (1-5 properties); repeat for more sets (≤ 10)
  --description <text>      update description (≤ 512 characters)
  --handler <id>            step handler (default microsoft/swupdate:2)
  --handler-property <k=v>  a string handler property; repeatable
  --handler-properties <json>  handler properties as a JSON object (merged)
  --installed-criteria <s>  shorthand for --handler-property installedCriteria=<s>
  --file <path>             another payload file of the step (e.g. an install script); repeatable

OPTIONS:
  --out <dir>               output folder (created)
  --format <f>              standard (default; applies on Microsoft's library too) or extended
                            (targets as built, no --recompress needed; only adudiffapi applies
                            it, devices on Microsoft's library download the full target;
                            written per source only where smaller than standard)
  --recompress              recompress the target (as `adudiff recompress`) and ship that
  --sign <command>          signing command for the recompressed sw-description (see recompress)
  --jobs <n>                sources generated at once (default: by available memory, estimated
                            as 512 MiB + 6 x (source + target size) per job)
  --threads <n>             worker threads per generation (default: cores / jobs)
  --zstd-level <n>          zstd level for patch-from candidates (default 12)
  --no-files                diff ext2/3/4 images as a whole instead of file by file
  -q, --quiet               no progress on stderr

SOURCE_DATE_EPOCH, when set, is the manifest's createdDateTime (reproducible releases).
Exit status: 0 manifest written; 1 failure (nothing is written to the manifest); 2 usage.";

/// A subcommand: parses its arguments and runs; `Err` carries the message to print.
type Command = fn(&[String]) -> Result<(), String>;

/// Options (`--name`, value) and positional arguments.
type SplitArgs = (Vec<(String, String)>, Vec<String>);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let help = rest.iter().any(|a| a == "-h" || a == "--help");
    let (text, run): (&str, Command) = match cmd.as_str() {
        "generate" => (GENERATE_HELP, cmd_generate),
        "recompress" => (RECOMPRESS_HELP, cmd_recompress),
        "apply" => (APPLY_HELP, cmd_apply),
        "dump" => (DUMP_HELP, cmd_dump),
        "manifest" => (MANIFEST_HELP, cmd_manifest),
        "release" => (RELEASE_HELP, cmd_release),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "-V" | "--version" => {
            println!("adudiff {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("adudiff: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if help {
        println!("{text}");
        return ExitCode::SUCCESS;
    }
    match run(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) if msg.starts_with("usage:") => {
            eprintln!("adudiff {cmd}: {msg}\n\n{text}");
            ExitCode::from(2)
        }
        Err(msg) => {
            eprintln!("adudiff {cmd}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Splits `--name value` options (and boolean flags) from positional arguments.
fn split_options(
    args: &[String],
    with_value: &[&str],
    flags: &[&str],
) -> Result<SplitArgs, String> {
    let mut opts = Vec::new();
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((k, v)) = a.split_once('=').filter(|(k, _)| with_value.contains(k)) {
            opts.push((k.to_string(), v.to_string()));
        } else if with_value.contains(&a.as_str()) {
            let v = it
                .next()
                .ok_or_else(|| format!("usage: {a} needs a value"))?;
            opts.push((a.clone(), v.clone()));
        } else if flags.contains(&a.as_str()) {
            opts.push((a.clone(), String::new()));
        } else if a.starts_with("--") {
            return Err(format!("usage: unknown option {a}"));
        } else {
            pos.push(a.clone());
        }
    }
    Ok((opts, pos))
}

fn cmd_generate(args: &[String]) -> Result<(), String> {
    let (opts, pos) = split_options(
        args,
        &[
            "--format",
            "--log-dir",
            "--work-dir",
            "--zstd-level",
            "--threads",
            "--bsdiff-max",
            "--segment-mb",
            "--margin-mb",
            "--bsdiff-small-match",
            "--files-diff-level",
            "--files-new-level",
            "--files-frame-level",
            "--files-frame-mb",
        ],
        &["-q", "--quiet", "--no-files"],
    )?;
    if !(3..=5).contains(&pos.len()) {
        return Err("usage: expected <source> <target> <delta> [<log dir>] [<work dir>]".into());
    }
    let mut log_dir: Option<PathBuf> = None;
    let mut work_dir: Option<PathBuf> = None;
    match pos.len() {
        4 => {
            // DiffGenTool 3.0.0: <source> <target> <output> <working folder>
            let wf = PathBuf::from(&pos[3]);
            log_dir = Some(next_log_dir(&wf));
            work_dir = Some(wf);
        }
        5 => {
            log_dir = Some(PathBuf::from(&pos[3]));
            work_dir = Some(PathBuf::from(&pos[4]));
        }
        _ => {}
    }
    let mut settings = DiffSettings::default();
    let mut threads = 0;
    let mut quiet = false;
    let mut files = true;
    let mut image = generate::image::ImageSettings::default();
    let mut format = generate::DeltaFormat::Standard;
    for (k, v) in opts {
        let num = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("usage: {k} expects a number, got {v:?}"))
        };
        match k.as_str() {
            "--format" => {
                format = generate::DeltaFormat::parse(&v).map_err(|e| format!("usage: {}", e.0))?
            }
            "--log-dir" => log_dir = Some(PathBuf::from(v)),
            "--work-dir" => work_dir = Some(PathBuf::from(v)),
            "--zstd-level" => settings.zstd_level = num(&v)?.clamp(1, 22) as i32,
            "--bsdiff-max" => settings.bsdiff_max = (num(&v)?.max(0) as u64) << 20,
            "--threads" => threads = num(&v)?.max(0) as usize,
            "--segment-mb" => settings.segment_size = (num(&v)?.max(0) as u64) << 20,
            "--margin-mb" => settings.segment_margin = (num(&v)?.max(0) as u64) << 20,
            "--bsdiff-small-match" => settings.bsdiff_small_match = num(&v)?.max(0) as usize,
            "--files-diff-level" => image.diff_level = num(&v)?.clamp(1, 22) as i32,
            "--files-new-level" => image.new_level = num(&v)?.clamp(1, 22) as i32,
            "--files-frame-level" => image.frame_level = num(&v)?.clamp(1, 22) as i32,
            "--files-frame-mb" => image.frame_size = (num(&v)?.clamp(1, 128) as u64) << 20,
            "--no-files" => files = false,
            _ => quiet = true,
        }
    }
    let o = GenerateOptions {
        source: PathBuf::from(&pos[0]),
        target: PathBuf::from(&pos[1]),
        output: PathBuf::from(&pos[2]),
        log_dir,
        work_dir,
        settings,
        threads,
        quiet,
        files,
        image,
    };
    let started = std::time::Instant::now();
    let r = generate::generate_format(&o, format).map_err(|e| e.to_string())?;
    println!(
        "{:<28} {:>13}  {:<30} {:<34} {:>11}",
        "member", "size", "strategy", "basis", "delta bytes"
    );
    for m in &r.members {
        let mut strategy = strategy_text(&m.strategy);
        if let Some(l) = m.zlib_level {
            strategy.push_str(&format!(", gzip level {l}"));
        }
        if let Some(by) = &m.rebuilt_by {
            strategy.push_str(&format!(", {by}"));
        }
        if m.zstd_rebuilt.is_some() {
            strategy.push_str(", zstd exact");
        }
        let basis = m
            .basis
            .as_ref()
            .map(|(n, why)| format!("{n} ({why})"))
            .unwrap_or_default();
        println!(
            "{:<28} {:>13}  {:<30} {:<34} {:>11}",
            truncate(&m.name, 28),
            group(m.size),
            strategy,
            truncate(&basis, 34),
            group(m.cost)
        );
    }
    println!(
        "\ntarget {} B, delta {} B ({:.2} % of the target), {} recipes, inline assets {} B, remainder {} B uncompressed; {:.1} s",
        group(r.target_size),
        group(r.delta_size),
        r.delta_size as f64 * 100.0 / r.target_size as f64,
        r.recipe_count,
        group(r.inline_size),
        group(r.remainder_size),
        started.elapsed().as_secs_f64()
    );
    println!("verified: applying the delta reproduces the target byte-exactly (SHA-256)");
    match (format, r.format) {
        (_, generate::DeltaFormat::Extended) => println!(
            "format: extended (adudiffapi only): devices that run Microsoft's libadudiffapi.so \
             reject it (error 30001, nothing written) and the agent downloads the full image"
        ),
        (generate::DeltaFormat::Extended, generate::DeltaFormat::Standard) => println!(
            "format: standard v2 (the extended format would not be smaller); Microsoft's \
             libadudiffapi.so applies it too"
        ),
        _ => println!("format: standard v2; Microsoft's libadudiffapi.so applies it too"),
    }
    let rebuilt: Vec<&str> = r
        .members
        .iter()
        .filter(|m| m.reconstructed.is_some())
        .map(|m| m.name.as_str())
        .collect();
    if !rebuilt.is_empty() {
        println!(
            "not zlib-reproducible, carried as text + deflate corrections (no recompression or re-signing needed): {}",
            rebuilt.join(", ")
        );
    }
    let zstd_rebuilt: Vec<String> = r
        .members
        .iter()
        .filter_map(|m| Some(format!("{} ({})", m.name, m.zstd_rebuilt.as_ref()?)))
        .collect();
    if !zstd_rebuilt.is_empty() {
        println!(
            "zstd frames rebuilt from their content by libzstd {} (no recompression or re-signing needed): {}",
            generate::zstdrebuild::version(),
            zstd_rebuilt.join(", ")
        );
    }
    let zstd = r.zstd_carried_compressed();
    if !zstd.is_empty() {
        let why: Vec<String> = r
            .members
            .iter()
            .filter(|m| m.zstd_compressed)
            .map(|m| match &m.zstd_not_reproducible {
                Some(why) => format!("{} ({why})", m.name),
                None => m.name.clone(),
            })
            .collect();
        let v = generate::zstdrebuild::version();
        if format == generate::DeltaFormat::Standard {
            println!(
                "zstd-compressed, carried as compressed bytes (the standard format has no recipe that rebuilds a zstd frame; --format extended rebuilds the frames libzstd {v} makes): {}",
                why.join(", ")
            );
        } else {
            println!(
                "zstd-compressed, carried as compressed bytes (not rebuilt from their content: only frames that libzstd {v} makes are; compress the image with zstd {v}, or gzip, for a small delta): {}",
                why.join(", ")
            );
        }
    }
    let bad = r.not_reproducible();
    let any_zstd = !zstd.is_empty() || !zstd_rebuilt.is_empty();
    if bad.is_empty() && rebuilt.is_empty() && !any_zstd {
        println!("target is already zlib-reproducible: no recompression or re-signing needed");
    } else if !bad.is_empty() {
        println!(
            "not zlib-reproducible (carried compressed; run `adudiff recompress` on the target and re-import it, or generate with --format extended, for a much smaller delta): {}",
            bad.join(", ")
        );
    }
    Ok(())
}

/// `<work dir>/logs/<n>` with the smallest unused n (DiffGenTool's convention).
fn next_log_dir(work: &Path) -> PathBuf {
    (0..1000)
        .map(|n| work.join("logs").join(n.to_string()))
        .find(|p| !p.exists())
        .unwrap_or_else(|| work.join("logs").join("999"))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cmd_recompress(args: &[String]) -> Result<(), String> {
    if !(2..=3).contains(&args.len()) {
        return Err("usage: expected <in.swu> <out.swu> [\"<signing command>\"]".into());
    }
    let r = recompress::recompress_file(
        Path::new(&args[0]),
        Path::new(&args[1]),
        args.get(2).map(String::as_str),
    )
    .map_err(|e| e.to_string())?;
    for (name, action) in &r.images {
        let what = match action {
            ImageAction::Recompressed { old_size, new_size } => {
                format!(
                    "recompressed ({} → {} bytes)",
                    group(*old_size),
                    group(*new_size)
                )
            }
            ImageAction::AlreadyReproducible => "already reproducible, unchanged".into(),
            ImageAction::NotCompressed(why) => format!("left unchanged: {why}"),
            ImageAction::Missing => "listed in sw-description but not in the archive".into(),
        };
        println!("{name}: {what}");
    }
    match r.signature {
        SignatureAction::Signed { added: true } => {
            println!("sw-description.sig: signed and added after sw-description")
        }
        SignatureAction::Signed { added: false } => println!("sw-description.sig: re-signed"),
        SignatureAction::RemovedStale => println!(
            "sw-description.sig: removed (it no longer matches; pass a signing command to re-sign)"
        ),
        SignatureAction::KeptValid => println!("sw-description.sig: kept (nothing changed)"),
        SignatureAction::None => {}
    }
    if !r.changed {
        println!("{}: no change needed", args[0]);
    }
    Ok(())
}

fn cmd_apply(args: &[String]) -> Result<(), String> {
    if args.len() != 3 {
        return Err("usage: expected <source> <delta> <target>".into());
    }
    adudiffapi::apply::apply_files(
        Path::new(&args[0]),
        Path::new(&args[1]),
        Path::new(&args[2]),
    )
    .map_err(|e| format!("code {}: {}", e.code, e.message))
}

fn item_json(i: &adudiffapi::format::Item) -> serde_json::Value {
    let mut v = serde_json::json!({ "length": i.length });
    if let Some(h) = &i.sha256 {
        v["sha256"] = adudiffapi::format::hex(h).into();
    }
    if let Some(h) = &i.md5 {
        v["md5"] = adudiffapi::format::hex(h).into();
    }
    if let Some(id) = i.internal {
        v["internal"] = id.into();
    }
    v
}

fn cmd_dump(args: &[String]) -> Result<(), String> {
    use serde_json::json;
    if args.len() != 1 {
        return Err("usage: expected <delta>".into());
    }
    let path = Path::new(&args[0]);
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = adudiffapi::io::SharedBytes::map_file(&f)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let size = bytes.len();
    let d = adudiffapi::format::parse_delta(bytes)
        .map_err(|e| format!("{}: code {}: {}", path.display(), e.code, e.message))?;
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for r in &d.recipes {
        *by_kind.entry(r.kind.name()).or_default() += 1;
    }
    let out = json!({
        "file": path.display().to_string(),
        "size": size,
        "format": format!("{:?}", d.format),
        "target": item_json(&d.target),
        "source": item_json(&d.source),
        "recipe_count": d.recipes.len(),
        "recipes_by_type": by_kind,
        "recipes": d.recipes.iter().map(|r| json!({
            "type": r.kind.name(),
            "result": item_json(&r.result),
            "numbers": r.numbers,
            "items": r.items.iter().map(item_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "blobs": d.blobs.iter().map(|b| json!({
            "item": item_json(&b.item),
            "offset": b.offset,
        })).collect::<Vec<_>>(),
        "nested_archives": d.nested_archives,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Options naming the update (shared by `release` and the whole-manifest form of `manifest`).
const IDENTITY_OPTIONS: &[&str] = &[
    "--provider",
    "--name",
    "--version",
    "--compat",
    "--description",
    "--handler",
    "--handler-property",
    "--handler-properties",
    "--installed-criteria",
    "--file",
];

/// The update's identity and step, from the identity options.
struct Identity {
    update_id: UpdateId,
    description: Option<String>,
    compatibility: Vec<Vec<(String, String)>>,
    handler: String,
    handler_properties: serde_json::Map<String, serde_json::Value>,
    extra_files: Vec<PathBuf>,
}

fn parse_identity(opts: &[(String, String)]) -> Result<Identity, String> {
    let one = |name: &str| -> Result<String, String> {
        opts.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("usage: {name} is required"))
    };
    let mut id = Identity {
        update_id: UpdateId {
            provider: one("--provider")?,
            name: one("--name")?,
            version: one("--version")?,
        },
        description: None,
        compatibility: Vec::new(),
        handler: import_manifest::DEFAULT_HANDLER.to_string(),
        handler_properties: serde_json::Map::new(),
        extra_files: Vec::new(),
    };
    for (k, v) in opts {
        match k.as_str() {
            "--compat" => {
                let mut set = Vec::new();
                for pair in v.split(',').filter(|p| !p.trim().is_empty()) {
                    let (name, value) = pair.split_once('=').ok_or_else(|| {
                        format!("usage: --compat expects name=value[,name=value…], got {pair:?}")
                    })?;
                    set.push((name.trim().to_string(), value.trim().to_string()));
                }
                id.compatibility.push(set);
            }
            "--description" => id.description = Some(v.clone()),
            "--handler" => id.handler = v.clone(),
            "--handler-property" => {
                let (name, value) = v.split_once('=').ok_or_else(|| {
                    format!("usage: --handler-property expects name=value, got {v:?}")
                })?;
                id.handler_properties
                    .insert(name.to_string(), value.to_string().into());
            }
            "--handler-properties" => match serde_json::from_str::<serde_json::Value>(v) {
                Ok(serde_json::Value::Object(m)) => id.handler_properties.extend(m),
                _ => {
                    return Err(format!(
                        "usage: --handler-properties expects a JSON object, got {v:?}"
                    ))
                }
            },
            "--installed-criteria" => {
                id.handler_properties
                    .insert("installedCriteria".into(), v.clone().into());
            }
            "--file" => id.extra_files.push(PathBuf::from(v)),
            _ => {}
        }
    }
    if id.compatibility.is_empty() {
        return Err(
            "usage: --compat is required (e.g. --compat manufacturer=Contoso,model=Toaster)".into(),
        );
    }
    Ok(id)
}

fn cmd_manifest(args: &[String]) -> Result<(), String> {
    let mut with_value = IDENTITY_OPTIONS.to_vec();
    with_value.extend(["--target", "--delta"]);
    let (opts, pos) = split_options(args, &with_value, &[])?;
    if pos.len() != 1 {
        return Err("usage: expected <source.swu>".into());
    }
    let get = |name: &str| {
        opts.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let path = Path::new(&pos[0]);
    let (target, delta) = (get("--target"), get("--delta"));
    if target.is_none() && delta.is_none() {
        let provider = get("--provider");
        let info = adudiffapi::generate::manifest::source_info(path, provider.as_deref())
            .map_err(|e| e.to_string())?;
        println!(
            "{}",
            serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let (Some(target), Some(delta)) = (target, delta) else {
        return Err("usage: the whole manifest needs both --target and --delta".into());
    };
    let id = parse_identity(&opts)?;
    let info = |p: &Path| -> Result<import_manifest::FileInfo, String> {
        let (size, sha256) =
            adudiffapi::generate::manifest::hash_file(p).map_err(|e| e.to_string())?;
        Ok(import_manifest::FileInfo {
            filename: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{}: no file name", p.display()))?,
            size,
            sha256,
        })
    };
    let (_, source_sha256) =
        adudiffapi::generate::manifest::hash_file(path).map_err(|e| e.to_string())?;
    let manifest = import_manifest::ImportManifest {
        update_id: id.update_id,
        description: id.description,
        compatibility: id.compatibility,
        handler: id.handler,
        handler_properties: id.handler_properties,
        target: info(Path::new(&target))?,
        extra_files: id
            .extra_files
            .iter()
            .map(|p| info(p))
            .collect::<Result<_, _>>()?,
        deltas: vec![import_manifest::DeltaFile {
            file: info(Path::new(&delta))?,
            source_sha256,
        }],
        created: import_manifest::created_date_time().map_err(|e| e.to_string())?,
    }
    .to_json();
    let errors = import_manifest::validate(&manifest);
    if !errors.is_empty() {
        return Err(format!(
            "the import manifest would break Device Update's schema:\n  {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    print!("{}", import_manifest::to_pretty_json(&manifest));
    Ok(())
}

fn cmd_release(args: &[String]) -> Result<(), String> {
    let mut with_value = IDENTITY_OPTIONS.to_vec();
    with_value.extend([
        "--out",
        "--format",
        "--sign",
        "--jobs",
        "--threads",
        "--zstd-level",
    ]);
    let (opts, pos) = split_options(
        args,
        &with_value,
        &["--recompress", "--no-files", "-q", "--quiet"],
    )?;
    if pos.len() < 2 {
        return Err("usage: expected <target.swu> and at least one <source.swu>".into());
    }
    let id = parse_identity(&opts)?;
    let mut o = ReleaseOptions {
        target: PathBuf::from(&pos[0]),
        sources: pos[1..].iter().map(PathBuf::from).collect(),
        out_dir: PathBuf::new(),
        update_id: id.update_id,
        description: id.description,
        compatibility: id.compatibility,
        handler: id.handler,
        handler_properties: id.handler_properties,
        extra_files: id.extra_files,
        format: DeltaFormat::Standard,
        recompress: false,
        sign_command: None,
        jobs: 0,
        threads: 0,
        quiet: false,
        settings: DiffSettings::default(),
        files: true,
        image: generate::image::ImageSettings::default(),
    };
    let mut out = None;
    for (k, v) in &opts {
        let num = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("usage: {k} expects a number, got {v:?}"))
        };
        match k.as_str() {
            "--out" => out = Some(PathBuf::from(v)),
            "--format" => o.format = DeltaFormat::parse(v).map_err(|e| e.to_string())?,
            "--sign" => o.sign_command = Some(v.clone()),
            "--jobs" => o.jobs = num(v)?.max(0) as usize,
            "--threads" => o.threads = num(v)?.max(0) as usize,
            "--zstd-level" => o.settings.zstd_level = num(v)?.clamp(1, 22) as i32,
            "--recompress" => o.recompress = true,
            "--no-files" => o.files = false,
            "-q" | "--quiet" => o.quiet = true,
            _ => {}
        }
    }
    o.out_dir = out.ok_or("usage: --out <dir> is required")?;
    if o.sign_command.is_some() && !o.recompress {
        return Err("usage: --sign only applies with --recompress".into());
    }
    let r = release::release(&o).map_err(|e| e.to_string())?;
    println!(
        "{:<30} {:>13} {:>13} {:>8}  {:<9} {:>7}  devices on Microsoft's library",
        "source", "source size", "delta size", "% target", "format", "time"
    );
    for s in &r.sources {
        let name = s.source.file_name().map_or_else(
            || s.source.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let microsoft = match (s.shipped, s.microsoft_applies) {
            (true, true) => "apply the delta",
            (true, false) => "fall back to the full image",
            (false, _) => "download the full image (delta left out)",
        };
        println!(
            "{:<30} {:>13} {:>13} {:>7.2}%  {:<9} {:>6.1}s  {microsoft}",
            truncate(&name, 30),
            group(s.source_size),
            group(s.delta_size),
            s.delta_size as f64 * 100.0 / r.target.size.max(1) as f64,
            s.format.name(),
            s.seconds,
        );
    }
    println!(
        "\ntarget {} ({} B{}); {} of {} deltas shipped, each verified by applying it",
        r.target.filename,
        group(r.target.size),
        if r.recompressed { ", recompressed" } else { "" },
        r.sources.iter().filter(|s| s.shipped).count(),
        r.sources.len()
    );
    println!("import manifest: {}", r.manifest_path.display());
    for w in &r.warnings {
        eprintln!("adudiff release: warning: {w}");
    }
    Ok(())
}
