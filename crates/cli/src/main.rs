//! `adudiff`: command-line front end (generate, release, recompress, apply, dump, manifest,
//! completions, man). The command line is declared in [`cli`] (clap), progress bars are drawn by
//! [`bars`] (indicatif); the work itself is the library's.

// The doc comments of `cli` are clap's help text, written in usage notation (`<source.swu>`),
// not HTML; rustdoc would otherwise report them as unclosed tags.
#![allow(rustdoc::invalid_html_tags)]
// The CLI needs no unsafe code: the work is the libraries' safe public API.
#![forbid(unsafe_code)]

mod bars;
mod cli;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use adudiff_gen::generate::import_manifest::{self, UpdateId};
use adudiff_gen::generate::release::{self, ReleaseOptions};
use adudiff_gen::generate::{self, strategy_text, DiffSettings, GenerateOptions};
use adudiff_gen::recompress::{self, ImageAction, SignatureAction};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use cli::{Cli, Command, GenerateArgs, IdentityArgs, ManifestArgs, ReleaseArgs};

/// Parses the command line (clap exits on help, --version and usage errors), installs the progress
/// bars on a terminal, runs the command and maps its outcome to the exit status.
fn main() -> ExitCode {
    // Help, --version and usage errors exit here (0 for help and version, 2 for usage errors).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    if std::io::stderr().is_terminal() {
        generate::progress::set_display(Some(Arc::new(bars::Bars)));
    }
    let (name, result) = match &cli.command {
        Command::Generate(a) => ("generate", cmd_generate(a)),
        Command::Release(a) => ("release", cmd_release(a, &sub)),
        Command::Recompress(a) => (
            "recompress",
            cmd_recompress(&a.input, &a.output, a.sign.as_deref()),
        ),
        Command::Apply(a) => ("apply", cmd_apply(&a.source, &a.delta, &a.target)),
        Command::Dump(a) => ("dump", cmd_dump(&a.delta)),
        Command::Manifest(a) => ("manifest", cmd_manifest(a, &sub)),
        Command::Completions(a) => ("completions", cmd_completions(a.shell)),
        Command::Man(a) => ("man", cmd_man(a.dir.as_deref())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("adudiff {name}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The generator's options and format from `adudiff generate`'s arguments: the positional
/// folders (DiffGenTool 3.0.0 forms) first, then --log-dir and --work-dir over them (numbers
/// are in range: clap rejects the others).
fn generate_options(a: &GenerateArgs) -> GenerateOptions {
    let (mut log_dir, mut work_dir) = match (&a.first_dir, &a.second_dir) {
        // DiffGenTool 3.0.0: <source> <target> <output> <working folder>
        (Some(work), None) => (Some(next_log_dir(work)), Some(work.clone())),
        (Some(log), Some(work)) => (Some(log.clone()), Some(work.clone())),
        _ => (None, None),
    };
    if let Some(d) = &a.log_dir {
        log_dir = Some(d.clone());
    }
    if let Some(d) = &a.work_dir {
        work_dir = Some(d.clone());
    }
    let settings = DiffSettings {
        zstd_level: a.zstd_level,
        bsdiff_max: mib(a.bsdiff_max_mib),
        segment_size: mib(a.segment_mib),
        segment_margin: mib(a.margin_mib),
        bsdiff_small_match: a.bsdiff_small_match,
    };
    let image = generate::image::ImageSettings {
        diff_level: a.files_diff_level,
        new_level: a.files_new_level,
        frame_level: a.files_frame_level,
        frame_size: mib(a.files_frame_mib),
        ..Default::default()
    };
    GenerateOptions {
        source: a.source.clone(),
        target: a.target.clone(),
        output: a.delta.clone(),
        log_dir,
        work_dir,
        settings,
        threads: a.threads,
        quiet: a.quiet,
        files: !a.no_files,
        image,
        format: a.format,
        target_analysis: None,
    }
}

/// A MiB option in bytes.
fn mib(n: u32) -> u64 {
    u64::from(n) << 20
}

/// `adudiff generate`: the delta, then its summary table and the reproducibility verdict.
fn cmd_generate(a: &GenerateArgs) -> Result<(), String> {
    let o = generate_options(a);
    let format = o.format;
    let started = std::time::Instant::now();
    let r = generate::generate(&o)
        .and_then(generate::Generated::written)
        .map_err(|e| e.to_string())?;
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
            "not zlib-reproducible, carried as text and rebuilt exactly (GNU gzip re-encoded, or deflate corrections; no recompression or re-signing needed): {}",
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
            "zstd frames rebuilt from their content, by libzstd {} or from their structure (no recompression or re-signing needed): {}",
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
                "zstd-compressed, carried as compressed bytes (not rebuilt from their content: only frames that libzstd {v} makes and level-3 frames of libzstd 1.5.2–1.5.6 are; compress the image with zstd {v}, or gzip, for a small delta): {}",
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

/// `s` cut to `n` characters, ending in `…` when cut.
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

/// `adudiff recompress`: one line per image and one for the signature.
fn cmd_recompress(input: &Path, output: &Path, sign: Option<&str>) -> Result<(), String> {
    let r = recompress::recompress_file(input, output, sign).map_err(|e| e.to_string())?;
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
        println!("{}: no change needed", input.display());
    }
    Ok(())
}

/// `adudiff apply`: the library's apply; a failure carries its error code.
fn cmd_apply(source: &Path, delta: &Path, target: &Path) -> Result<(), String> {
    adudiff_core::apply::apply_files(source, delta, target)
        .map_err(|e| format!("code {}: {}", e.code, e.message))
}

/// An item as `dump` prints it.
fn item_json(i: &adudiff_core::format::Item) -> serde_json::Value {
    let mut v = serde_json::json!({ "length": i.length });
    if let Some(h) = &i.sha256 {
        v["sha256"] = adudiff_core::format::hex(h).into();
    }
    if let Some(h) = &i.md5 {
        v["md5"] = adudiff_core::format::hex(h).into();
    }
    if let Some(id) = i.internal {
        v["internal"] = id.into();
    }
    v
}

/// `adudiff dump`: the parsed delta as JSON.
fn cmd_dump(path: &Path) -> Result<(), String> {
    use serde_json::json;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = adudiff_core::io::SharedBytes::map_file(&f)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let size = bytes.len();
    let d = adudiff_core::format::parse_delta(bytes)
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

/// The update's identity and step, from the identity options.
struct Identity {
    update_id: UpdateId,
    description: Option<String>,
    compatibility: Vec<Vec<(String, String)>>,
    handler: String,
    handler_properties: serde_json::Map<String, serde_json::Value>,
    extra_files: Vec<PathBuf>,
}

/// The identity from its options; `m` (the subcommand's matches) gives the command-line order
/// in which --handler-property, --handler-properties and --installed-criteria are merged: a later
/// option overrides an earlier one, whichever of the three each is. Clap has already checked
/// that provider, name, version and compat are present where they are required.
fn identity(a: &IdentityArgs, m: &ArgMatches) -> Identity {
    let required = |v: &Option<String>| v.clone().unwrap_or_default();
    let at =
        |id: &str| -> Vec<usize> { m.indices_of(id).map(Iterator::collect).unwrap_or_default() };
    let mut merged: Vec<(usize, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    for (i, (k, v)) in at("handler_property").into_iter().zip(&a.handler_property) {
        merged.push((i, [(k.clone(), v.clone().into())].into_iter().collect()));
    }
    for (i, props) in at("handler_properties")
        .into_iter()
        .zip(&a.handler_properties)
    {
        merged.push((i, props.clone()));
    }
    for (i, v) in at("installed_criteria")
        .into_iter()
        .zip(&a.installed_criteria)
    {
        merged.push((
            i,
            [("installedCriteria".to_string(), v.clone().into())]
                .into_iter()
                .collect(),
        ));
    }
    merged.sort_by_key(|(i, _)| *i);
    let mut handler_properties = serde_json::Map::new();
    for (_, props) in merged {
        handler_properties.extend(props);
    }
    Identity {
        update_id: UpdateId {
            provider: required(&a.provider),
            name: required(&a.name),
            version: required(&a.version),
        },
        description: a.description.clone(),
        compatibility: a.compat.iter().map(|c| c.0.clone()).collect(),
        handler: a.handler.clone(),
        handler_properties,
        extra_files: a.file.clone(),
    }
}

/// `adudiff manifest`: relatedFiles properties, or with --target and --delta the whole manifest.
fn cmd_manifest(a: &ManifestArgs, m: &ArgMatches) -> Result<(), String> {
    let path = a.source.as_path();
    let (Some(target), Some(delta)) = (&a.target, &a.delta) else {
        // Clap makes --target and --delta require each other: neither was given.
        let info =
            adudiff_gen::generate::manifest::source_info(path, a.identity.provider.as_deref())
                .map_err(|e| e.to_string())?;
        println!(
            "{}",
            serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?
        );
        return Ok(());
    };
    let id = identity(&a.identity, m);
    let info = |p: &Path| -> Result<import_manifest::FileInfo, String> {
        let (size, sha256) =
            adudiff_gen::generate::manifest::hash_file(p).map_err(|e| e.to_string())?;
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
        adudiff_gen::generate::manifest::hash_file(path).map_err(|e| e.to_string())?;
    let manifest = import_manifest::ImportManifest {
        update_id: id.update_id,
        description: id.description,
        compatibility: id.compatibility,
        handler: id.handler,
        handler_properties: id.handler_properties,
        target: info(target)?,
        extra_files: id
            .extra_files
            .iter()
            .map(|p| info(p))
            .collect::<Result<_, _>>()?,
        deltas: vec![import_manifest::DeltaFile {
            file: info(delta)?,
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

/// The release options from `adudiff release`'s arguments (`m`: its matches, for the identity).
fn release_options(a: &ReleaseArgs, m: &ArgMatches) -> ReleaseOptions {
    let id = identity(&a.identity, m);
    ReleaseOptions {
        target: a.target.clone(),
        sources: a.sources.clone(),
        out_dir: a.out.clone(),
        update_id: id.update_id,
        description: id.description,
        compatibility: id.compatibility,
        handler: id.handler,
        handler_properties: id.handler_properties,
        extra_files: id.extra_files,
        format: a.format,
        recompress: a.recompress,
        sign_command: a.sign.clone(),
        jobs: a.jobs,
        threads: a.threads,
        quiet: a.quiet,
        settings: DiffSettings {
            zstd_level: a.zstd_level,
            ..DiffSettings::default()
        },
        files: !a.no_files,
        image: generate::image::ImageSettings::default(),
        fallback: !a.no_fallback,
    }
}

/// `adudiff release`: the release, then one summary row per source.
fn cmd_release(a: &ReleaseArgs, m: &ArgMatches) -> Result<(), String> {
    let o = release_options(a, m);
    let r = release::release(&o).map_err(|e| e.to_string())?;
    println!(
        "{:<30} {:>13} {:>13} {:>8}  {:<9} {:>7}",
        "source", "source size", "delta size", "% target", "format", "time"
    );
    let percent = |n: u64| n as f64 * 100.0 / r.target.size.max(1) as f64;
    for s in &r.sources {
        let name = s.source.file_name().map_or_else(
            || s.source.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!(
            "{:<30} {:>13} {:>13} {:>7.2}%  {:<9} {:>6.1}s{}",
            truncate(&name, 30),
            group(s.source_size),
            group(s.delta_size),
            percent(s.delta_size),
            s.format.name(),
            s.seconds,
            if s.shipped { "" } else { "  delta left out" },
        );
        if let release::Fallback::Shipped(f) = &s.fallback {
            println!(
                "{:<30} {:>13} {:>13} {:>7.2}%  {:<9} {:>6.1}s",
                "  + standard fallback",
                "",
                group(f.size),
                percent(f.size),
                "standard",
                f.seconds,
            );
        }
        for (who, d) in [
            ("this library", s.download_this_library(r.target.size)),
            ("Microsoft's 3.0.0", s.download_microsoft(r.target.size)),
        ] {
            println!(
                "  devices on {who:<17} download {:>13} B: {}",
                group(d.bytes),
                d.what
            );
        }
    }
    let fallbacks = r
        .sources
        .iter()
        .filter(|s| matches!(s.fallback, release::Fallback::Shipped(_)))
        .count();
    println!(
        "\ntarget {} ({} B{}); {} of {} deltas shipped{}, each verified by applying it",
        r.target.filename,
        group(r.target.size),
        if r.recompressed { ", recompressed" } else { "" },
        r.sources.iter().filter(|s| s.shipped).count(),
        r.sources.len(),
        match fallbacks {
            0 => String::new(),
            n => format!(" + {n} standard fallback(s)"),
        }
    );
    println!("import manifest: {}", r.manifest_path.display());
    for w in &r.warnings {
        eprintln!("adudiff release: warning: {w}");
    }
    Ok(())
}

/// `adudiff completions <shell>`: the completion script on stdout.
fn cmd_completions(shell: clap_complete::Shell) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "adudiff", &mut out);
    Ok(())
}

/// `adudiff man`: adudiff.1 on stdout, or every page into `dir`.
fn cmd_man(dir: Option<&Path>) -> Result<(), String> {
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return clap_mangen::Man::new(man_command())
            .render(&mut out)
            .map_err(|e| e.to_string());
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    clap_mangen::generate_to(man_command(), dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The command line as the man pages describe it: every subcommand carries the tool's version
/// too (clap_mangen prints it in each page's header and VERSION section), without gaining a
/// `--version` flag (`release --version` is an identity option).
fn man_command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| {
        sub.version(env!("CARGO_PKG_VERSION"))
            .disable_version_flag(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use adudiff_gen::generate::DeltaFormat;

    /// Parses a command line (without the program name) into the arguments and the subcommand's
    /// matches, as `main` does.
    fn parse(args: &[&str]) -> Result<(Cli, ArgMatches), clap::Error> {
        let m = Cli::command()
            .try_get_matches_from(std::iter::once("adudiff").chain(args.iter().copied()))?;
        let cli = Cli::from_arg_matches(&m)?;
        let sub = m.subcommand().map(|(_, s)| s.clone()).unwrap_or_default();
        Ok((cli, sub))
    }

    fn generate_args(args: &[&str]) -> GenerateArgs {
        match parse(args).unwrap().0.command {
            Command::Generate(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn release_args(args: &[&str]) -> (ReleaseArgs, ArgMatches) {
        match parse(args).unwrap() {
            (
                Cli {
                    command: Command::Release(a),
                },
                m,
            ) => (a, m),
            (other, _) => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn generate_defaults_are_the_library_defaults() {
        let o = generate_options(&generate_args(&["generate", "a", "b", "c"]));
        assert_eq!(o.format, DeltaFormat::Standard);
        assert_eq!(
            format!("{:?}", o.settings),
            format!("{:?}", DiffSettings::default())
        );
        assert_eq!(
            format!("{:?}", o.image),
            format!("{:?}", generate::image::ImageSettings::default())
        );
        assert_eq!(
            (o.threads, o.quiet, o.files, o.log_dir, o.work_dir),
            (0, false, true, None, None)
        );
        assert_eq!(
            (o.source, o.target, o.output),
            ("a".into(), "b".into(), "c".into())
        );
    }

    #[test]
    fn generate_numbers_in_range_are_taken_and_the_last_one_wins() {
        let o = generate_options(&generate_args(&[
            "generate",
            "--zstd-level=19",
            "--zstd-level",
            "1",
            "--bsdiff-max-mib",
            "0",
            "--segment-mib=0",
            "--margin-mib",
            "3",
            "--bsdiff-small-match",
            "0",
            "--files-diff-level",
            "1",
            "--files-new-level",
            "22",
            "--files-frame-level",
            "5",
            "--files-frame-mib",
            "128",
            "--threads",
            "0",
            "--format",
            "extended",
            "--format=standard",
            "--no-files",
            "-q",
            "--quiet",
            "a",
            "b",
            "c",
        ]));
        let s = o.settings;
        assert_eq!(
            (s.zstd_level, s.bsdiff_max, s.segment_size, s.segment_margin),
            (1, 0, 0, 3 << 20)
        );
        assert_eq!(s.bsdiff_small_match, 0);
        let i = o.image;
        assert_eq!(
            (i.diff_level, i.new_level, i.frame_level, i.frame_size),
            (1, 22, 5, 128 << 20)
        );
        assert_eq!((o.threads, o.quiet, o.files), (0, true, false));
        assert_eq!(o.format, DeltaFormat::Standard);
        // The earlier MiB spellings are hidden aliases.
        let o = generate_options(&generate_args(&[
            "generate",
            "--bsdiff-max=2",
            "--segment-mb=3",
            "--margin-mb=4",
            "--files-frame-mb=5",
            "a",
            "b",
            "c",
        ]));
        let (s, i) = (o.settings, o.image);
        assert_eq!(
            (s.bsdiff_max, s.segment_size, s.segment_margin, i.frame_size),
            (2 << 20, 3 << 20, 4 << 20, 5 << 20)
        );
    }

    #[test]
    fn out_of_range_numbers_are_usage_errors_that_name_the_range() {
        for (option, value, range) in [
            ("--zstd-level", "0", "1..=22"),
            ("--zstd-level", "23", "1..=22"),
            ("--files-diff-level", "99", "1..=22"),
            ("--files-frame-mib", "0", "1..=128"),
            ("--files-frame-mib", "500", "1..=128"),
            ("--segment-mib", "1048577", "0..=1048576"),
        ] {
            let arg = format!("{option}={value}");
            let e = parse(&["generate", &arg, "a", "b", "c"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{arg}");
            let text = e.to_string();
            assert!(
                text.contains(range) && text.contains(option),
                "{arg}: {text}"
            );
        }
        for arg in [
            "--threads=-2",
            "--bsdiff-small-match=-9",
            "--bsdiff-max-mib=-1",
        ] {
            let e = parse(&["generate", arg, "a", "b", "c"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{arg}");
        }
    }

    #[test]
    fn an_option_never_takes_the_next_option_as_its_value() {
        for args in [
            &["release", "--out", "--quiet", "t.swu", "s.swu"][..],
            &["generate", "--log-dir", "-q", "a", "b", "c"],
            &["generate", "--zstd-level", "-5", "a", "b", "c"],
            &["manifest", "--provider", "--name", "s.swu"],
        ] {
            let e = parse(args).unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::UnknownArgument
                ),
                "{args:?}: {e}"
            );
        }
        // A value that starts with '-' is given with '='.
        let (a, _) = release_args(&[
            "release",
            "--out=-rel",
            "--provider=P",
            "--name=N",
            "--version=1.0",
            "--compat=a=1",
            "--description=-beta",
            "t.swu",
            "s.swu",
        ]);
        assert_eq!(a.out, PathBuf::from("-rel"));
        assert_eq!(a.identity.description.as_deref(), Some("-beta"));
    }

    #[test]
    fn generate_positional_folders_follow_diffgentool() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let w = work.to_str().unwrap();
        // <work dir>: log folder <work dir>/logs/<smallest unused n>.
        let o = generate_options(&generate_args(&["generate", "a", "b", "c", w]));
        assert_eq!(o.work_dir.as_deref(), Some(work.as_path()));
        assert_eq!(o.log_dir, Some(work.join("logs/0")));
        std::fs::create_dir_all(work.join("logs/0")).unwrap();
        let o = generate_options(&generate_args(&["generate", "a", "b", "c", w]));
        assert_eq!(o.log_dir, Some(work.join("logs/1")));
        // <log dir> <work dir>.
        let o = generate_options(&generate_args(&["generate", "a", "b", "c", "L", w]));
        assert_eq!(
            (o.log_dir, o.work_dir),
            (Some("L".into()), Some(work.clone()))
        );
        // The options override the positional folders.
        let o = generate_options(&generate_args(&[
            "generate",
            "a",
            "b",
            "c",
            "L",
            w,
            "--log-dir",
            "X",
            "--work-dir=Y",
        ]));
        assert_eq!(
            (o.log_dir, o.work_dir),
            (Some("X".into()), Some("Y".into()))
        );
    }

    #[test]
    fn release_options_map_every_argument() {
        let (a, m) = release_args(&[
            "release",
            "--out=rel",
            "--provider",
            "P",
            "--name=N",
            "--version",
            "1.0",
            "--compat",
            " a = 1 ,, b=2",
            "--compat=c=3",
            "--description=-beta build",
            "--handler",
            "h/x:1",
            "--file",
            "f1",
            "--file=f2",
            "--recompress",
            "--sign",
            "sh sign.sh",
            "--jobs",
            "2",
            "--threads=0",
            "--zstd-level",
            "22",
            "--no-files",
            "-q",
            "--format",
            "extended",
            "--no-fallback",
            "t.swu",
            "s1.swu",
            "s2.swu",
        ]);
        let o = release_options(&a, &m);
        assert_eq!(o.target, PathBuf::from("t.swu"));
        assert_eq!(o.sources, [PathBuf::from("s1.swu"), "s2.swu".into()]);
        assert_eq!(o.out_dir, PathBuf::from("rel"));
        assert_eq!(
            (
                o.update_id.provider.as_str(),
                o.update_id.name.as_str(),
                o.update_id.version.as_str()
            ),
            ("P", "N", "1.0")
        );
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            o.compatibility,
            [vec![pair("a", "1"), pair("b", "2")], vec![pair("c", "3")]]
        );
        assert_eq!(o.description.as_deref(), Some("-beta build"));
        assert_eq!(o.handler, "h/x:1");
        assert_eq!(o.extra_files, [PathBuf::from("f1"), "f2".into()]);
        assert!(o.recompress && !o.files && o.quiet);
        assert_eq!(o.sign_command.as_deref(), Some("sh sign.sh"));
        assert_eq!((o.jobs, o.threads, o.settings.zstd_level), (2, 0, 22));
        assert_eq!(o.format, DeltaFormat::Extended);
        assert!(!o.fallback);
        // Defaults.
        let (a, m) = release_args(&[
            "release",
            "--out",
            "rel",
            "--provider",
            "P",
            "--name",
            "N",
            "--version",
            "1.0",
            "--compat",
            "a=1",
            "t.swu",
            "s.swu",
        ]);
        let o = release_options(&a, &m);
        assert_eq!(o.handler, import_manifest::DEFAULT_HANDLER);
        assert!(o.handler_properties.is_empty() && o.extra_files.is_empty());
        assert!(!o.recompress && o.files && !o.quiet && o.sign_command.is_none());
        assert_eq!((o.jobs, o.threads), (0, 0));
        assert_eq!(
            format!("{:?}", o.settings),
            format!("{:?}", DiffSettings::default())
        );
        assert_eq!(o.format, DeltaFormat::Standard);
        assert!(o.fallback);
    }

    #[test]
    fn handler_properties_merge_in_command_line_order() {
        let base = [
            "release",
            "--out",
            "o",
            "--provider",
            "P",
            "--name",
            "N",
            "--version",
            "1.0",
            "--compat",
            "a=1",
        ];
        let props = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            args.extend(["t", "s"]);
            let (a, m) = release_args(&args);
            serde_json::Value::Object(release_options(&a, &m).handler_properties)
        };
        assert_eq!(
            props(&[
                "--handler-properties",
                r#"{"installedCriteria":"json","x":1}"#,
                "--installed-criteria",
                "ic",
                "--handler-property",
                "x=2",
                "--handler-property=y=a=b",
            ]),
            serde_json::json!({"installedCriteria": "ic", "x": "2", "y": "a=b"})
        );
        assert_eq!(
            props(&[
                "--installed-criteria",
                "ic",
                "--handler-property",
                "x=2",
                "--handler-properties",
                r#"{"installedCriteria":"json","x":1}"#,
            ]),
            serde_json::json!({"installedCriteria": "json", "x": 1})
        );
    }

    #[test]
    fn usage_errors_are_clap_errors_with_status_2() {
        for args in [
            &["generate", "a", "b"][..],
            &["generate", "a", "b", "c", "d", "e", "f"],
            &["generate", "--frobnicate", "a", "b", "c"],
            &["generate", "--zstd-level", "high", "a", "b", "c"],
            &["generate", "--format", "compact", "a", "b", "c"],
            &["generate", "a", "b", "c", "--log-dir"],
            &["apply", "a", "b"],
            &["dump"],
            &["dump", "a", "b"],
            &["recompress", "a"],
            &["recompress", "a", "b", "c", "d"],
            &["manifest"],
            &["manifest", "--target", "t", "s"],
            &["manifest", "--delta", "d", "s"],
            &["release", "--out", "o", "t", "s"],
            &["completions", "tcsh"],
            &["frobnicate"],
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        let e = parse(&["generate", "--format", "compact", "a", "b", "c"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a delta format"), "{e}");
    }
}
