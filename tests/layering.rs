//! The workspace's layering (documented in `crates/core/src/lib.rs`, `src/lib.rs` and
//! `crates/gen/src/lib.rs`): every path in the non-test code of a top-level module that names a
//! module of the workspace — `crate::…` inside its own crate, `adudiff_core::…`,
//! `adudiff_gen::…` or `adudiffapi::…` from another — names a module of a strictly lower layer,
//! and crosses crates only downwards: the apply core (`adudiff-core`, layers 1–8) uses only
//! itself, the C boundary (`adudiffapi`, layer 9) only the core, the tools (`adudiff-gen`,
//! layers 10–12) only the core (never `adudiffapi::`). So the module graph is a DAG and the
//! device library's core never reaches up into the tools. The manifests are checked too: the
//! core depends on neither other crate, the tools not on `adudiffapi`, the C boundary on the core
//! alone, and the CLI (`crates/cli`, package `adudiff`, above everything) on the core and the
//! tools, never on `adudiffapi` (Cargo forbids cycles anyway; the test documents the direction).
//!
//! Sources are tokenized with `proc-macro2` (so comments, doc links and string contents are not
//! paths); items under `#[cfg(test)]` are skipped, since tests may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The workspace's crates, by their name in paths (`adudiff_core::…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Crate {
    /// `crates/core`, package `adudiff-core`.
    Core,
    /// The root package `adudiffapi`, the C boundary (the CLI, crates/cli, is above everything).
    Api,
    /// `crates/gen`, package `adudiff-gen`.
    Gen,
}

impl Crate {
    const ALL: [Crate; 3] = [Crate::Core, Crate::Api, Crate::Gen];

    fn path_name(self) -> &'static str {
        match self {
            Crate::Core => "adudiff_core",
            Crate::Api => "adudiffapi",
            Crate::Gen => "adudiff_gen",
        }
    }

    fn from_path_name(name: &str) -> Option<Crate> {
        Crate::ALL.into_iter().find(|c| c.path_name() == name)
    }

    /// The crate's source directory.
    fn src_dir(self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Crate::Core => root.join("crates/core/src"),
            Crate::Api => root.join("src"),
            Crate::Gen => root.join("crates/gen/src"),
        }
    }

    /// The crates whose modules this crate's code may name (besides its own).
    fn may_use(self) -> &'static [Crate] {
        match self {
            Crate::Core => &[],
            Crate::Api => &[Crate::Core],
            Crate::Gen => &[Crate::Core],
        }
    }

    /// Items of the crate root that are re-exports, with the module they come from (a module of
    /// [`Crate::Core`] for the root package's re-exports of the core).
    fn root_reexports(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Crate::Core => &[("Error", "error"), ("Result", "error")],
            Crate::Api => &[
                ("Error", "error"),
                ("Result", "error"),
                ("apply", "apply"),
                ("codec", "codec"),
                ("error", "error"),
                ("execute", "execute"),
                ("format", "format"),
                ("io", "io"),
                ("pardeflate", "pardeflate"),
                ("plan", "plan"),
                ("stack", "stack"),
                ("sync", "sync"),
            ],
            Crate::Gen => &[],
        }
    }
}

/// Top-level modules by layer, lowest first, with their crate. A module may use modules of lower
/// layers only (of its own crate or of one its crate may use); modules of one layer are
/// independent of each other.
const LAYERS: &[(Crate, &[&str])] = &[
    (Crate::Core, &["error"]),
    (Crate::Core, &["io", "stack", "sync"]),
    (Crate::Core, &["pardeflate"]),
    (Crate::Core, &["codec"]),
    (Crate::Core, &["format"]),
    (Crate::Core, &["plan"]),
    (Crate::Core, &["execute"]),
    (Crate::Core, &["apply"]),
    (Crate::Api, &["ffi"]),
    (Crate::Gen, &["swu", "tool"]),
    (Crate::Gen, &["recompress"]),
    (Crate::Gen, &["generate"]),
];

/// The layer (index into [`LAYERS`]) of `module` of `krate`.
fn layer_of(krate: Crate, module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(c, layer)| *c == krate && layer.contains(&module))
}

/// The modules [`LAYERS`] places in `krate`.
fn modules_of(krate: Crate) -> Vec<&'static str> {
    LAYERS
        .iter()
        .filter(|(c, _)| *c == krate)
        .flat_map(|(_, l)| l.iter().copied())
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `group` is the bracket group of a `#[cfg(test)]` attribute.
fn is_cfg_test(tree: &TokenTree) -> bool {
    match tree {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {
            let text: String = g.stream().to_string().split_whitespace().collect();
            text == "cfg(test)"
        }
        _ => false,
    }
}

fn is_punct(tree: Option<&TokenTree>, c: char) -> bool {
    matches!(tree, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn is_ident(tree: Option<&TokenTree>, names: &[&str]) -> bool {
    matches!(tree, Some(TokenTree::Ident(i)) if names.iter().any(|n| i == n))
}

/// The index just past the item starting at `start`: its `;`, or its body's brace group (for
/// items whose first brace group is their body).
fn item_end(tokens: &[TokenTree], start: usize) -> usize {
    // Only the item's own tokens before its `;` or first brace group decide: the keywords of a
    // later item must not make a `mod tests { … }` reach on to that item's `;`.
    let ends_at_semicolon = tokens[start..]
        .iter()
        .take_while(|t| {
            !is_punct(Some(t), ';')
                && !matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace)
        })
        .any(|t| is_ident(Some(t), &["const", "static", "use", "type", "let"]));
    let mut i = start;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p) if p.as_char() == ';' => return i + 1,
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace && !ends_at_semicolon => {
                return i + 1
            }
            _ => i += 1,
        }
    }
    i
}

/// The first identifier of each comma-separated part of a `crate::{…}` group.
fn group_heads(stream: TokenStream, out: &mut BTreeSet<String>) {
    let mut at_start = true;
    for tree in stream {
        match tree {
            TokenTree::Ident(i) if at_start => {
                out.insert(i.to_string());
                at_start = false;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
            _ => at_start = false,
        }
    }
}

/// The path roots the scanner follows: `crate` and the workspace's crates.
const ROOTS: &[&str] = &["crate", "adudiff_core", "adudiffapi", "adudiff_gen"];

/// Collects `(root, first segment)` for each path starting with one of [`ROOTS`] (`crate::x`,
/// `adudiff_core::{x, y}`, …) in non-test code of `stream`.
fn crate_paths(stream: TokenStream, out: &mut BTreeSet<(String, String)>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if is_punct(tokens.get(i), '#') && tokens.get(i + 1).is_some_and(is_cfg_test) {
            i = item_end(&tokens, i + 2);
            continue;
        }
        match &tokens[i] {
            TokenTree::Ident(id)
                if ROOTS.iter().any(|r| id == r)
                    && !(i > 0 && is_punct(tokens.get(i - 1), '$'))
                    // `a::adudiff_core::x` is not a path into the crate (`::adudiff_core::x` is).
                    && !(i > 1
                        && is_punct(tokens.get(i - 1), ':')
                        && is_punct(tokens.get(i - 2), ':')
                        && matches!(tokens.get(i - 3), Some(TokenTree::Ident(_))))
                    && is_punct(tokens.get(i + 1), ':')
                    && is_punct(tokens.get(i + 2), ':') =>
            {
                let root = id.to_string();
                match tokens.get(i + 3) {
                    Some(TokenTree::Ident(next)) => {
                        out.insert((root, next.to_string()));
                    }
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                        let mut heads = BTreeSet::new();
                        group_heads(g.stream(), &mut heads);
                        out.extend(heads.into_iter().map(|h| (root.clone(), h)));
                    }
                    _ => {}
                }
                i += 3;
            }
            TokenTree::Group(g) => {
                crate_paths(g.stream(), out);
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// A module: its crate and name.
type Module = (Crate, String);

/// The module a scanned path `(root, segment)` in code of `krate` names: `crate::` is `krate`,
/// with its root re-exports resolved (the root package's re-exports of the core are the core's
/// modules); an unknown root gives `None`.
fn resolve(krate: Crate, root: &str, segment: &str) -> Option<Module> {
    let target = if root == "crate" {
        krate
    } else {
        Crate::from_path_name(root)?
    };
    match target
        .root_reexports()
        .iter()
        .find(|(item, _)| *item == segment)
    {
        // The root package re-exports the core's modules and error type.
        Some((_, m)) if target == Crate::Api => Some((Crate::Core, m.to_string())),
        Some((_, m)) => Some((target, m.to_string())),
        None => Some((target, segment.to_string())),
    }
}

/// module -> the modules its non-test code names, over the library sources of every crate.
fn import_graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for krate in Crate::ALL {
        let src = krate.src_dir();
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            // The binaries use the library through its public API (`adudiffapi::`, `adudiff_gen::`),
            // from above; lib.rs only declares and re-exports.
            if first == "bin" || first == "lib.rs" {
                continue;
            }
            let module = (krate, first.trim_end_matches(".rs").to_string());
            let text = std::fs::read_to_string(&file).unwrap();
            let stream = TokenStream::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: cannot tokenize: {e}", file.display()));
            let mut paths = BTreeSet::new();
            crate_paths(stream, &mut paths);
            let targets = graph.entry(module.clone()).or_default();
            for (root, segment) in paths {
                let target = resolve(krate, &root, &segment).unwrap();
                if target != module {
                    targets.insert(target);
                }
            }
        }
    }
    graph
}

/// The edges of `graph` that break the layering: to a module of the same or a higher layer, to
/// a crate the module's crate may not use, or to something that is no module. Layers are
/// numbered from 1 in the messages, as in the crates' docs.
fn violations(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut bad = Vec::new();
    for ((krate, module), targets) in graph {
        let Some(from) = layer_of(*krate, module).map(|l| l + 1) else {
            bad.push(format!("{krate:?}::{module} has no layer"));
            continue;
        };
        for (tkrate, target) in targets {
            if tkrate != krate && !krate.may_use().contains(tkrate) {
                bad.push(format!(
                    "{krate:?}::{module} (layer {from}) uses crate {} ({tkrate:?}::{target})",
                    tkrate.path_name()
                ));
                continue;
            }
            match layer_of(*tkrate, target).map(|l| l + 1) {
                None => bad.push(format!(
                    "{krate:?}::{module} uses {}::{target}, not a module",
                    tkrate.path_name()
                )),
                Some(to) if to >= from => bad.push(format!(
                    "{krate:?}::{module} (layer {from}) -> {tkrate:?}::{target} (layer {to})"
                )),
                Some(_) => {}
            }
        }
    }
    bad
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let mut total = 0;
    for krate in Crate::ALL {
        let lib_rs = krate.src_dir().join("lib.rs");
        let lib = std::fs::read_to_string(&lib_rs).unwrap();
        let declared: Vec<&str> = lib
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub mod "))
            .map(|l| l.trim_end_matches(';'))
            .collect();
        total += declared.len();
        for module in &declared {
            assert!(
                layer_of(krate, module).is_some(),
                "module `{module}` ({}) has no layer in tests/layering.rs and the crate docs",
                lib_rs.display()
            );
        }
        for module in modules_of(krate) {
            assert!(
                declared.contains(&module),
                "`{module}` is not a module of {} any more",
                krate.path_name()
            );
        }
    }
    assert!(total >= 15, "{total} modules");
}

#[test]
fn imports_only_go_down_the_layers() {
    let graph = import_graph();
    assert!(graph.len() >= 15, "{graph:?}");
    // The tools do use the core, across the crate boundary (the scanner sees those paths).
    assert!(
        graph
            .iter()
            .any(|((c, _), t)| *c == Crate::Gen && t.iter().any(|(tc, _)| *tc == Crate::Core)),
        "{graph:?}"
    );
    let bad = violations(&graph);
    assert!(bad.is_empty(), "imports that do not go down:\n{bad:#?}");
}

/// The checker itself: edges that go up or sideways, or cross into a crate that is not below.
#[test]
fn checker_rejects_upward_and_cross_crate_edges() {
    let edge = |from: (Crate, &str), to: (Crate, &str)| {
        let mut graph = BTreeMap::new();
        graph.insert(
            (from.0, from.1.to_string()),
            BTreeSet::from([(to.0, to.1.to_string())]),
        );
        violations(&graph)
    };
    assert!(edge((Crate::Core, "format"), (Crate::Core, "codec")).is_empty());
    assert!(edge((Crate::Gen, "generate"), (Crate::Core, "format")).is_empty());
    assert!(edge((Crate::Api, "ffi"), (Crate::Core, "apply")).is_empty());
    // Up within a crate, and sideways within a layer.
    assert_eq!(
        edge((Crate::Core, "codec"), (Crate::Core, "format")).len(),
        1
    );
    assert_eq!(edge((Crate::Gen, "swu"), (Crate::Gen, "tool")).len(), 1);
    // Across crates the wrong way, or into the C boundary from the tools.
    assert_eq!(edge((Crate::Core, "apply"), (Crate::Gen, "swu")).len(), 1);
    assert_eq!(edge((Crate::Core, "apply"), (Crate::Api, "ffi")).len(), 1);
    assert_eq!(edge((Crate::Gen, "swu"), (Crate::Api, "ffi")).len(), 1);
    assert_eq!(edge((Crate::Api, "ffi"), (Crate::Gen, "generate")).len(), 1);
    // `adudiffapi::format` is the core's module (the root only re-exports it), so the layer rule
    // alone would let the tools name it; `tools_and_core_never_name_adudiffapi` forbids the path.
    assert_eq!(
        resolve(Crate::Gen, "adudiffapi", "format"),
        Some((Crate::Core, "format".to_string()))
    );
    assert_eq!(
        resolve(Crate::Gen, "adudiffapi", "ffi"),
        Some((Crate::Api, "ffi".to_string()))
    );
}

/// No path of the tools or the core goes through `adudiffapi::` at all (not even to a re-export of
/// the core): the tools name the core directly.
#[test]
fn tools_and_core_never_name_adudiffapi() {
    for krate in [Crate::Core, Crate::Gen] {
        let mut files = Vec::new();
        rust_files(&krate.src_dir(), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut paths = BTreeSet::new();
            crate_paths(TokenStream::from_str(&text).unwrap(), &mut paths);
            for (root, segment) in paths {
                assert!(
                    root != "adudiffapi" && (krate == Crate::Gen || root != "adudiff_gen"),
                    "{}: {root}::{segment}",
                    file.display()
                );
            }
        }
    }
}

/// The dependency names of a manifest (every `*dependencies` table, dotted or not).
fn manifest_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            if let Some((_, name)) = header.split_once("dependencies.") {
                deps.insert(name.trim_matches('"').to_string());
                in_deps = false;
            } else {
                in_deps = header.ends_with("dependencies");
            }
        } else if in_deps && !line.starts_with('#') && line.contains('=') {
            let key = line
                .split(['=', '.'])
                .next()
                .unwrap()
                .trim()
                .trim_matches('"');
            deps.insert(key.to_string());
        }
    }
    deps
}

#[test]
fn manifests_depend_downwards_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let core = manifest_dependencies(&read("crates/core/Cargo.toml"));
    let gen = manifest_dependencies(&read("crates/gen/Cargo.toml"));
    assert!(
        core.contains("preflate-rs") && gen.contains("adudiff-core"),
        "{core:?} {gen:?}"
    );
    for name in ["adudiff-gen", "adudiffapi"] {
        assert!(!core.contains(name), "adudiff-core depends on {name}");
    }
    assert!(
        !gen.contains("adudiffapi"),
        "adudiff-gen depends on adudiffapi"
    );
    // The C boundary's package builds the library only: its normal dependencies are the core
    // alone (the CLI is crates/cli, package `adudiff`, which uses the core and the tools).
    let api = read("Cargo.toml");
    let api_normal = manifest_dependencies(
        &api.lines()
            .skip_while(|l| l.trim() != "[dependencies]")
            .take_while(|l| l.trim() == "[dependencies]" || !l.starts_with('['))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let only_core: BTreeSet<String> = ["adudiff-core".to_string()].into();
    assert_eq!(api_normal, only_core, "the root package's [dependencies]");
    let cli = manifest_dependencies(&read("crates/cli/Cargo.toml"));
    assert!(
        cli.contains("adudiff-core") && cli.contains("adudiff-gen") && cli.contains("clap"),
        "{cli:?}"
    );
    assert!(
        !cli.contains("adudiffapi"),
        "adudiff (the CLI) depends on adudiffapi"
    );
    // The parser sees dotted keys, inline tables and `[dependencies.x]` tables.
    let parsed = manifest_dependencies(
        "[dependencies]\na.workspace = true\nb = \"1\"\n# c = 1\n[dev-dependencies]\nd = { path = \"x\" }\n\
         [dependencies.e]\nversion = \"1\"\n[features]\nf = []\n",
    );
    let expected: BTreeSet<String> = ["a", "b", "d", "e"].into_iter().map(String::from).collect();
    assert_eq!(parsed, expected);
}

/// The scanner itself: what counts as a path, and what test code may do.
#[test]
fn scanner_sees_paths_but_not_comments_strings_or_test_items() {
    let code = r#"
        //! Links to [`crate::ffi`] in docs are not imports.
        use crate::{io::Scratch, error};
        use crate::format::model::Item;
        use adudiff_core::{plan::Plan, stack};
        /// See `crate::generate`.
        fn f() -> crate::plan::Plan { let _ = "crate::apply"; todo!() }
        macro_rules! m { () => { $crate::execute::run() } }
        pub(crate) struct S;
        #[cfg(test)]
        mod tests { use crate::generate::x; use adudiffapi::ffi; }
        #[cfg(test)]
        use crate::recompress;
        #[cfg(test)]
        const C: u8 = { crate::tool::X };
        fn g() { crate::codec::y(); other::adudiff_gen::z(); ::adudiffapi::ffi::w() }
        #[cfg(test)]
        mod more_tests { }
        use crate::sync::lock;
    "#;
    let mut names = BTreeSet::new();
    crate_paths(TokenStream::from_str(code).unwrap(), &mut names);
    let expected: BTreeSet<(String, String)> = [
        ("crate", "io"),
        ("crate", "error"),
        ("crate", "format"),
        ("crate", "plan"),
        ("crate", "codec"),
        ("crate", "sync"),
        ("adudiff_core", "plan"),
        ("adudiff_core", "stack"),
        ("adudiffapi", "ffi"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(names, expected);
}
