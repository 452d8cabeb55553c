//! The crate's layering (documented in `src/lib.rs`): every `crate::…` path in the non-test code
//! of a top-level module names a module of a strictly lower layer, so the module graph is a DAG
//! and the device library's core never reaches up into the tools.
//!
//! Sources are tokenized with `proc-macro2` (so comments, doc links and string contents are not
//! paths); items under `#[cfg(test)]` are skipped, since tests may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Top-level modules by layer, lowest first. A module may use modules of lower layers only;
/// modules of one layer are independent of each other.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["io", "stack", "sync"],
    &["pardeflate"],
    &["codec"],
    &["format"],
    &["plan"],
    &["execute"],
    &["apply"],
    &["ffi"],
    &["swu", "tool"],
    &["recompress"],
    &["generate"],
];

/// Items of the crate root that are re-exports, with the module they come from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("Error", "error"), ("Result", "error")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
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
    let ends_at_semicolon = tokens[start..]
        .iter()
        .take_while(|t| !is_punct(Some(t), ';'))
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

/// Collects the first segment after each `crate::` in non-test code of `stream`.
fn crate_paths(stream: TokenStream, out: &mut BTreeSet<String>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if is_punct(tokens.get(i), '#') && tokens.get(i + 1).is_some_and(is_cfg_test) {
            i = item_end(&tokens, i + 2);
            continue;
        }
        match &tokens[i] {
            TokenTree::Ident(id)
                if id == "crate"
                    && !(i > 0 && is_punct(tokens.get(i - 1), '$'))
                    && is_punct(tokens.get(i + 1), ':')
                    && is_punct(tokens.get(i + 2), ':') =>
            {
                match tokens.get(i + 3) {
                    Some(TokenTree::Ident(next)) => {
                        out.insert(next.to_string());
                    }
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                        group_heads(g.stream(), out)
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

/// module -> the modules its non-test code names through `crate::`.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        // The binaries use the library through its public API (`adudiffapi::`), from above.
        if first == "bin" || first == "lib.rs" {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let stream = TokenStream::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: cannot tokenize: {e}", file.display()));
        let mut names = BTreeSet::new();
        crate_paths(stream, &mut names);
        let targets = graph.entry(module.clone()).or_default();
        for name in names {
            let target = ROOT_REEXPORTS
                .iter()
                .find(|(item, _)| *item == name)
                .map_or(name.clone(), |(_, m)| m.to_string());
            if target != module {
                targets.insert(target);
            }
        }
    }
    graph
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() >= 10, "{declared:?}");
    for module in &declared {
        assert!(
            layer_of(module).is_some(),
            "module `{module}` (src/lib.rs) has no layer in tests/layering.rs and src/lib.rs"
        );
    }
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            declared.contains(module),
            "`{module}` is not a module any more"
        );
    }
}

#[test]
fn imports_only_go_down_the_layers() {
    let graph = import_graph();
    assert!(graph.len() >= 10, "{graph:?}");
    let mut upward = Vec::new();
    for (module, targets) in &graph {
        let from = layer_of(module).unwrap_or_else(|| panic!("`{module}` has no layer"));
        for target in targets {
            let to = layer_of(target)
                .unwrap_or_else(|| panic!("`{module}` uses `crate::{target}`, not a module"));
            if to >= from {
                upward.push(format!("{module} (layer {from}) -> {target} (layer {to})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not go down:\n{upward:#?}"
    );
}

/// The scanner itself: what counts as a path, and what test code may do.
#[test]
fn scanner_sees_paths_but_not_comments_strings_or_test_items() {
    let code = r#"
        //! Links to [`crate::ffi`] in docs are not imports.
        use crate::{io::Scratch, error};
        use crate::format::model::Item;
        /// See `crate::generate`.
        fn f() -> crate::plan::Plan { let _ = "crate::apply"; todo!() }
        macro_rules! m { () => { $crate::execute::run() } }
        pub(crate) struct S;
        #[cfg(test)]
        mod tests { use crate::generate::x; }
        #[cfg(test)]
        use crate::recompress;
        #[cfg(test)]
        const C: u8 = { crate::tool::X };
        fn g() { crate::codec::y() }
    "#;
    let mut names = BTreeSet::new();
    crate_paths(TokenStream::from_str(code).unwrap(), &mut names);
    let expected: BTreeSet<String> = ["io", "error", "format", "plan", "codec"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
}
