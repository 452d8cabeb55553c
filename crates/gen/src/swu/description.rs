//! `sw-description` (libconfig syntax): find the `images` entries and rewrite their `sha256`
//! values in place, without re-formatting anything else (upstream re-emits the whole file with
//! libconfig's writer, which drops comments and changes the layout).

use std::collections::HashMap;
use std::ops::Range;

/// One element of an `images` (or `files`, `scripts`) list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// Name of the list the entry is in (`images`, `files`, …).
    pub section: String,
    /// `filename` value.
    pub filename: String,
    /// `compressed` value (string contents, or the bare word such as `true`).
    pub compressed: Option<String>,
    /// `type` value.
    pub kind: Option<String>,
    /// Current `sha256` value.
    pub sha256: Option<String>,
    /// Byte range of the `sha256` string contents (inside the quotes).
    sha256_span: Option<Range<usize>>,
    /// Byte offset just after the `filename` setting (after its `;`/`,` if present).
    filename_end: usize,
    /// Start of the line holding the `filename` setting.
    filename_line_start: usize,
}

impl ImageEntry {
    /// Whether the entry declares gzip/zlib compression (`compressed = "zlib"`, `"gz"`,
    /// `"gzip"` or `true`).
    pub fn declares_gzip(&self) -> bool {
        matches!(
            self.compressed.as_deref(),
            Some("zlib") | Some("gz") | Some("gzip") | Some("true")
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(u8),
}

struct Token {
    tok: Tok,
    span: Range<usize>,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' || (c == b'/' && b.get(i + 1) == Some(&b'/')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..]
                .find("*/")
                .ok_or_else(|| format!("unterminated comment at byte {i}"))?;
            i += 2 + end + 2;
        } else if c == b'"' {
            let start = i;
            i += 1;
            let mut s = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = text[i..].chars().next().expect("in bounds");
                s.push(ch);
                i += ch.len_utf8();
            }
            if i >= b.len() {
                return Err(format!("unterminated string at byte {start}"));
            }
            i += 1;
            out.push(Token {
                tok: Tok::Str(s),
                span: start..i,
            });
        } else if b"{}()[]=:;,".contains(&c) {
            out.push(Token {
                tok: Tok::Punct(c),
                span: i..i + 1,
            });
            i += 1;
        } else {
            let start = i;
            let ends_word = |i: usize| {
                b[i].is_ascii_whitespace()
                    || b"{}()[]=:;,\"#".contains(&b[i])
                    || (b[i] == b'/' && matches!(b.get(i + 1), Some(b'/') | Some(b'*')))
            };
            while i < b.len() && !ends_word(i) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(text[start..i].to_string()),
                span: start..i,
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
    entries: Vec<ImageEntry>,
}

/// A scalar setting found inside a group: value text and the span of the string contents.
struct Scalar {
    value: String,
    contents: Option<Range<usize>>,
    end: usize,
    start: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn err(&self, what: &str) -> String {
        let at = self
            .toks
            .get(self.pos)
            .map_or(self.text.len(), |t| t.span.start);
        let line = self.text[..at].matches('\n').count() + 1;
        format!("sw-description line {line}: {what}")
    }

    /// settings until `}` or end of input; returns the scalars of this level by name.
    fn settings(&mut self) -> Result<HashMap<String, Scalar>, String> {
        let mut scalars = HashMap::new();
        loop {
            match self.peek() {
                None | Some(Tok::Punct(b'}')) => return Ok(scalars),
                Some(Tok::Punct(b';')) | Some(Tok::Punct(b',')) => {
                    self.pos += 1;
                    continue;
                }
                Some(Tok::Word(_)) => {}
                _ => return Err(self.err("expected a setting name")),
            }
            let name_tok = self.pos;
            let name = match &self.toks[name_tok].tok {
                Tok::Word(w) => w.clone(),
                _ => unreachable!(),
            };
            self.pos += 1;
            match self.peek() {
                Some(Tok::Punct(b'=')) | Some(Tok::Punct(b':')) => self.pos += 1,
                _ => return Err(self.err(&format!("expected '=' or ':' after {name}"))),
            }
            if let Some(scalar) = self.value(&name)? {
                let mut scalar = scalar;
                scalar.start = self.toks[name_tok].span.start;
                if let Some(Tok::Punct(b';')) | Some(Tok::Punct(b',')) = self.peek() {
                    scalar.end = self.toks[self.pos].span.end;
                }
                scalars.insert(name, scalar);
            }
        }
    }

    /// A value; returns a scalar for strings and bare words.
    fn value(&mut self, name: &str) -> Result<Option<Scalar>, String> {
        let tok = self
            .toks
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        match tok.tok.clone() {
            Tok::Str(_) => {
                let start = tok.span.start;
                let mut value = String::new();
                let mut contents = tok.span.start + 1..tok.span.end - 1;
                let mut n = 0;
                while let Some(Token {
                    tok: Tok::Str(s),
                    span,
                }) = self.toks.get(self.pos)
                {
                    value.push_str(s);
                    contents = if n == 0 {
                        span.start + 1..span.end - 1
                    } else {
                        contents
                    };
                    n += 1;
                    self.pos += 1;
                }
                let end = self.toks[self.pos - 1].span.end;
                Ok(Some(Scalar {
                    value,
                    contents: (n == 1).then_some(contents),
                    end,
                    start,
                }))
            }
            Tok::Word(w) => {
                let span = tok.span.clone();
                self.pos += 1;
                Ok(Some(Scalar {
                    value: w,
                    contents: None,
                    end: span.end,
                    start: span.start,
                }))
            }
            Tok::Punct(b'{') => {
                self.pos += 1;
                self.settings()?;
                self.expect(b'}')?;
                Ok(None)
            }
            Tok::Punct(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some(Tok::Punct(c)) if *c == close => {
                            self.pos += 1;
                            return Ok(None);
                        }
                        Some(Tok::Punct(b',')) => self.pos += 1,
                        Some(Tok::Punct(b'{')) => {
                            self.pos += 1;
                            let scalars = self.settings()?;
                            self.expect(b'}')?;
                            self.record(name, scalars);
                        }
                        Some(_) => {
                            self.value(name)?;
                        }
                        None => return Err(self.err("unterminated list")),
                    }
                }
            }
            _ => Err(self.err("unexpected token")),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(Tok::Punct(x)) if *x == c => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.err(&format!("expected '{}'", c as char))),
        }
    }

    fn record(&mut self, list: &str, mut s: HashMap<String, Scalar>) {
        let Some(filename) = s.remove("filename") else {
            return;
        };
        let sha = s.remove("sha256");
        let line_start = self.text[..filename.start].rfind('\n').map_or(0, |p| p + 1);
        self.entries.push(ImageEntry {
            section: list.to_string(),
            filename: filename.value,
            compressed: s.remove("compressed").map(|c| c.value),
            kind: s.remove("type").map(|c| c.value),
            sha256: sha.as_ref().map(|c| c.value.clone()),
            sha256_span: sha.and_then(|c| c.contents),
            filename_end: filename.end,
            filename_line_start: line_start,
        });
    }
}

/// Every group with a `filename` inside any list (`images`, `files`, `scripts`, …), in file
/// order.
pub fn entries(text: &str) -> Result<Vec<ImageEntry>, String> {
    let mut p = Parser {
        text,
        toks: tokenize(text)?,
        pos: 0,
        entries: Vec::new(),
    };
    p.settings()?;
    if p.pos != p.toks.len() {
        return Err(p.err("unbalanced '}'"));
    }
    Ok(p.entries)
}

/// Entries of `images` lists only (what upstream's `recompress` handles).
pub fn images(text: &str) -> Result<Vec<ImageEntry>, String> {
    Ok(entries(text)?
        .into_iter()
        .filter(|e| e.section == "images")
        .collect())
}

/// Sets `sha256` (lower-case hex) of every `images` entry whose filename is in `hashes`; an entry
/// without a `sha256` setting gets one on a new line after its `filename`. Nothing else changes.
pub fn set_image_sha256(text: &str, hashes: &HashMap<String, String>) -> Result<String, String> {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for e in images(text)? {
        let Some(hash) = hashes.get(&e.filename) else {
            continue;
        };
        match &e.sha256_span {
            Some(span) => edits.push((span.clone(), hash.clone())),
            None if e.sha256.is_some() => {
                return Err(format!(
                    "sha256 of {:?} is not a single string literal",
                    e.filename
                ))
            }
            None => {
                let line = &text[e.filename_line_start..];
                let indent: String = line
                    .chars()
                    .take_while(|c| *c == ' ' || *c == '\t')
                    .collect();
                let sep = if text[e.filename_line_start..e.filename_end].ends_with(';')
                    || text[e.filename_line_start..e.filename_end].ends_with(',')
                {
                    ""
                } else {
                    ";"
                };
                edits.push((
                    e.filename_end..e.filename_end,
                    format!("{sep}\n{indent}sha256 = \"{hash}\";"),
                ));
            }
        }
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    for (range, new) in edits {
        out.replace_range(range, &new);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: &str = r#"software =
{
	version = "2.0"; // comment
	hardware-compatibility: [ "1.0" ];
	stable = {
		main: {
			images: (
				{
					filename = "rootfs.ext4.gz";
					type = "raw";
					compressed = "zlib";
					device = "/dev/mmcblk0p2";
					sha256 = "0000";
				},
				{
					filename = "vmlinuz";
					/* no hash yet */
					type = "rawfile"; path = "/boot/vmlinuz";
				}
			);
			files: ( { filename = "config.tar.gz"; type = "archive"; sha256 = "aa"; } );
		};
	};
}
"#;

    #[test]
    fn finds_images_and_files() {
        let all = entries(DESC).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].filename, "rootfs.ext4.gz");
        assert!(all[0].declares_gzip());
        assert_eq!(all[0].sha256.as_deref(), Some("0000"));
        assert_eq!(all[1].compressed, None);
        assert_eq!(all[2].section, "files");
        assert_eq!(images(DESC).unwrap().len(), 2);
    }

    #[test]
    fn rewrites_only_the_hash_values() {
        let mut h = HashMap::new();
        h.insert("rootfs.ext4.gz".to_string(), "ab".repeat(32));
        h.insert("vmlinuz".to_string(), "cd".repeat(32));
        h.insert("config.tar.gz".to_string(), "ef".repeat(32));
        let out = set_image_sha256(DESC, &h).unwrap();
        let expected = DESC
            .replace(
                "sha256 = \"0000\"",
                &format!("sha256 = \"{}\"", "ab".repeat(32)),
            )
            .replace(
                "filename = \"vmlinuz\";",
                &format!(
                    "filename = \"vmlinuz\";\n\t\t\t\t\tsha256 = \"{}\";",
                    "cd".repeat(32)
                ),
            );
        assert_eq!(out, expected);
        // Idempotent once the values are in place.
        assert_eq!(set_image_sha256(&out, &h).unwrap(), out);
        let again = images(&out).unwrap();
        assert_eq!(again[1].sha256.as_deref(), Some(&*"cd".repeat(32)));
    }

    #[test]
    fn reports_syntax_errors_with_a_line() {
        let e = entries("software = { images = ( { filename = \"x\" ; ").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }
}
