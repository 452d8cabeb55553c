//! Device Update import manifest, version 5.0: building one for a target file with its deltas,
//! checking a manifest against the published schema's rules, and writing it with the keys in
//! the documented order.
//!
//! [`validate`] checks the rules of SchemaStore's `azure-deviceupdate-import-manifest-5.0.json`
//! and the shared `azure-deviceupdate-manifest-definitions-5.0.json` it refers to (the schema
//! Microsoft Learn's "import manifest schema" page names), each limit with the schema's value:
//! `updateId` provider and name `^[a-zA-Z0-9.-]+$` of 1–64 characters, a version of 2–4 numeric
//! parts of 0–2147483647 each; 1–10 compatibility sets of 1–5 string properties (values 1–64
//! characters, names 1–32); 1–10 instruction steps, inline (handler `^\S+/\S+:\d{1,5}$` of 5–32
//! characters, 1–10 file names, optional handler properties) or reference (an `updateId`), step
//! descriptions of 1–64 characters, no other step properties; an update description of 1–512
//! characters; 0–10 files (or `null`) of 1–2147483648 bytes with file names of 1–255 characters,
//! unique within the update, `hashes` with a base64 `sha256` and at most 2 algorithms; per file
//! at most 4 related files and a download handler whose id follows the handler pattern;
//! `manifestVersion` "5.0"; a `createdDateTime`.
//!
//! Where the schema's text and its keywords differ, the text is checked (facts of the 5.0 files):
//! - version parts: the pattern `^\d+(?:\.\d+)+$` admits 2 or more parts; the description says
//!   "two to four" parts "between 0 and 2147483647".
//! - compatibility property names and hash algorithm names: the schema puts `propertyNames`
//!   (1–32, resp. at most 10 characters) inside `additionalProperties`, where a JSON Schema
//!   validator applies it to the string values, not to the names; the names are checked.
//! - the sum of the files' sizes: at most 2 GB says the `files` description (no keyword); taken
//!   as 2147483648 bytes, the schema's largest file.
//! - `sizeInBytes` is a JSON `number` in the schema; a byte count is checked as a whole number.
//! - `createdDateTime` is described as ISO 8601 (no keyword); checked as
//!   `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
//! - `files` may be `null` says its description (its `type` is `array`); `null` is accepted.
//!
//! The schema forbids other properties in `updateId`, `instructions` and the steps, and allows
//! them in files, related files, `hashes` (algorithms), `properties` and `downloadHandler`. At the
//! top level the SchemaStore file sets no `additionalProperties`, but Microsoft Learn's schema page
//! says no other properties are allowed: only the schema's eight are accepted, and `isDeployable`
//! (a boolean the Azure CLI's `az iot du update init v5` writes for updates deployed only as part
//! of others).
//!
//! Two checks go beyond the schema because the agent needs them: step files must be listed in
//! `files`, and a file with related files needs a download handler; with `microsoft/delta:1`
//! each related file needs the source hash properties. Related files may share a source: the
//! agent's delta download handler tries them in order until one applies (docs/RELEASE.md).

use std::fmt;

use serde_json::{json, Map, Value};

use super::manifest::base64;
use crate::tool::error::{fail, ToolResult};

/// Manifest schema version written and accepted.
pub const MANIFEST_VERSION: &str = "5.0";
/// Download handler of delta related files.
pub const DELTA_DOWNLOAD_HANDLER: &str = "microsoft/delta:1";
/// Default step handler for SWUpdate images.
pub const DEFAULT_HANDLER: &str = "microsoft/swupdate:2";
/// Largest file size (`sizeInBytes` `maximum`; also the largest sum of the update's file
/// sizes, "2 GB" in the `files` description), in bytes.
pub const MAX_FILE_SIZE: u64 = 2_147_483_648;
/// Most payload files of an update (`files` `maxItems`; also a step's `files`).
pub const MAX_FILES: usize = 10;
/// Most related files (deltas) of one file (`relatedFiles` `maxItems`).
pub const MAX_RELATED_FILES: usize = 4;
/// Most hash algorithms of one file (`fileHashes` `maxProperties`).
pub const MAX_HASHES: usize = 2;
/// Most compatibility sets (`compatibility` `maxItems`).
pub const MAX_COMPATIBILITY_SETS: usize = 10;
/// Most properties of one compatibility set (`compatibilityInfo` `maxProperties`).
pub const MAX_COMPATIBILITY_PROPERTIES: usize = 5;
/// Most instruction steps (`steps` `maxItems`).
pub const MAX_STEPS: usize = 10;

/// Unique identity of an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateId {
    /// Entity responsible for the update (e.g. a company), `^[a-zA-Z0-9.-]+$`, 1–64 characters.
    pub provider: String,
    /// Class of the update (e.g. a device model), `^[a-zA-Z0-9.-]+$`, 1–64 characters.
    pub name: String,
    /// 2–4 dot-separated numbers, e.g. `1.2.0`.
    pub version: String,
}

/// A file named in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// File name (no folder).
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
}

/// A delta: a related file of the target, found on the device by its source's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaFile {
    /// The delta file.
    pub file: FileInfo,
    /// SHA-256 of the source the delta applies to.
    pub source_sha256: [u8; 32],
}

/// Everything an import manifest for one target file (with optional deltas) says.
#[derive(Clone, Debug)]
pub struct ImportManifest {
    /// Update identity.
    pub update_id: UpdateId,
    /// Optional description (1–512 characters).
    pub description: Option<String>,
    /// Compatibility sets: (property, value) pairs each.
    pub compatibility: Vec<Vec<(String, String)>>,
    /// Step handler, e.g. [`DEFAULT_HANDLER`].
    pub handler: String,
    /// Step handler properties (e.g. `installedCriteria`).
    pub handler_properties: Map<String, Value>,
    /// The target file (the one installed).
    pub target: FileInfo,
    /// Further payload files of the step (e.g. an install script), without deltas.
    pub extra_files: Vec<FileInfo>,
    /// Deltas of the target (`relatedFiles`), in the order the agent tries them; a source may
    /// have more than one (e.g. an extended delta, then a standard fallback).
    pub deltas: Vec<DeltaFile>,
    /// `createdDateTime` (see [`created_date_time`]).
    pub created: String,
}

impl ImportManifest {
    /// The manifest as JSON.
    pub fn to_json(&self) -> Value {
        let compatibility: Vec<Value> = self
            .compatibility
            .iter()
            .map(|set| {
                Value::Object(
                    set.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        let file = |f: &FileInfo| {
            json!({
                "filename": f.filename,
                "sizeInBytes": f.size,
                "hashes": { "sha256": base64(&f.sha256) },
            })
        };
        let mut target = file(&self.target);
        if !self.deltas.is_empty() {
            target["relatedFiles"] = self
                .deltas
                .iter()
                .map(|d| {
                    let mut r = file(&d.file);
                    r["properties"] = related_file_properties(&d.source_sha256);
                    r
                })
                .collect();
            target["downloadHandler"] = json!({ "id": DELTA_DOWNLOAD_HANDLER });
        }
        let mut files = vec![target];
        files.extend(self.extra_files.iter().map(file));
        let step_files: Vec<&str> = std::iter::once(&self.target)
            .chain(&self.extra_files)
            .map(|f| f.filename.as_str())
            .collect();
        let mut m = json!({
            "updateId": {
                "provider": self.update_id.provider,
                "name": self.update_id.name,
                "version": self.update_id.version,
            },
            "compatibility": compatibility,
            "instructions": {
                "steps": [{
                    "type": "inline",
                    "handler": self.handler,
                    "files": step_files,
                    "handlerProperties": Value::Object(self.handler_properties.clone()),
                }],
            },
            "files": files,
            "manifestVersion": MANIFEST_VERSION,
            "createdDateTime": self.created,
        });
        if let Some(d) = &self.description {
            m["description"] = Value::String(d.clone());
        }
        m
    }
}

/// The `properties` of a delta related file: how the agent finds the source it applies to.
pub fn related_file_properties(source_sha256: &[u8; 32]) -> Value {
    json!({
        "microsoft.sourceFileHashAlgorithm": "sha256",
        "microsoft.sourceFileHash": base64(source_sha256),
    })
}

// ---------------------------------------------------------------------------------------------
// createdDateTime
// ---------------------------------------------------------------------------------------------

/// `createdDateTime`: `SOURCE_DATE_EPOCH` (seconds since 1970, for reproducible builds) when set,
/// otherwise the current time; UTC, ISO 8601 (`2024-01-31T12:00:00Z`).
pub fn created_date_time() -> ToolResult<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<i64>().map_err(|_| {
            fail(
                "SOURCE_DATE_EPOCH",
                format!("{v:?} is not a number of seconds since 1970-01-01"),
            )
        })?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    Ok(iso8601_utc(secs))
}

/// Seconds since 1970-01-01T00:00:00Z as ISO 8601 UTC with second precision.
pub fn iso8601_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (proleptic Gregorian; H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Whether `s` is an ISO 8601 date and time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            .then(|| s[r].parse::<u32>().unwrap_or(u32::MAX))
    };
    let (Some(_), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return false;
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return false;
    }
    if b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return false;
    }
    if h > 23 || mi > 59 || se > 60 {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] if (*sign == b'+' || *sign == b'-') => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Schema rules
// ---------------------------------------------------------------------------------------------

/// A broken schema rule: the field (JSON path such as `files[0].relatedFiles[1].sizeInBytes`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// Path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects errors while walking the manifest.
struct Check(Vec<SchemaError>);

impl Check {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(SchemaError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// An object with only `allowed` keys and all `required` ones.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        field: &str,
        required: &[&str],
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(o) = v.as_object() else {
            self.err(field, "must be an object");
            return None;
        };
        for k in required {
            if !o.contains_key(*k) {
                self.err(&join(field, k), "is required");
            }
        }
        if !allowed.is_empty() {
            for k in o.keys() {
                if !allowed.contains(&k.as_str()) {
                    self.err(&join(field, k), "is not an allowed property");
                }
            }
        }
        Some(o)
    }

    /// A string of `min..=max` characters.
    fn string<'v>(&mut self, v: &'v Value, field: &str, min: usize, max: usize) -> Option<&'v str> {
        let Some(s) = v.as_str() else {
            self.err(field, "must be a string");
            return None;
        };
        let n = s.chars().count();
        if n < min || n > max {
            self.err(
                field,
                format!("{s:?} has {n} characters; allowed: {min} to {max}"),
            );
            return None;
        }
        Some(s)
    }

    /// An array of `min..=max` items.
    fn array<'v>(
        &mut self,
        v: &'v Value,
        field: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v Vec<Value>> {
        let Some(a) = v.as_array() else {
            self.err(field, "must be an array");
            return None;
        };
        if a.len() < min || a.len() > max {
            self.err(
                field,
                format!("has {} items; allowed: {min} to {max}", a.len()),
            );
        }
        Some(a)
    }
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

/// Checks `manifest` against the import manifest 5.0 rules (see the module documentation);
/// returns every broken rule, naming its field (empty: valid).
pub fn validate(manifest: &Value) -> Vec<SchemaError> {
    let mut c = Check(Vec::new());
    let Some(root) = c.object(
        manifest,
        "",
        &[
            "updateId",
            "compatibility",
            "instructions",
            "manifestVersion",
            "createdDateTime",
        ],
        &[
            "$schema",
            "updateId",
            "isDeployable",
            "description",
            "compatibility",
            "instructions",
            "files",
            "manifestVersion",
            "createdDateTime",
        ],
    ) else {
        return c.0;
    };
    if let Some(v) = root.get("$schema") {
        c.string(v, "$schema", 0, usize::MAX);
    }
    if let Some(v) = root.get("isDeployable") {
        if !v.is_boolean() {
            c.err("isDeployable", "must be true or false");
        }
    }
    if let Some(v) = root.get("updateId") {
        check_update_id(&mut c, v, "updateId");
    }
    if let Some(v) = root.get("description") {
        c.string(v, "description", 1, 512);
    }
    if let Some(v) = root.get("compatibility") {
        check_compatibility(&mut c, v);
    }
    let mut filenames: Vec<String> = Vec::new();
    if let Some(files) = root.get("files").filter(|v| !v.is_null()) {
        check_files(&mut c, files, &mut filenames);
    }
    if let Some(v) = root.get("instructions") {
        check_instructions(&mut c, v, &filenames);
    }
    if let Some(v) = root.get("manifestVersion") {
        if v.as_str() != Some(MANIFEST_VERSION) {
            c.err(
                "manifestVersion",
                format!("must be \"{MANIFEST_VERSION}\", found {v}"),
            );
        }
    }
    if let Some(v) = root.get("createdDateTime") {
        if !v.as_str().is_some_and(is_iso8601) {
            c.err(
                "createdDateTime",
                format!("{v} is not an ISO 8601 date and time (e.g. 2024-01-31T12:00:00Z)"),
            );
        }
    }
    c.0
}

fn check_update_id(c: &mut Check, v: &Value, field: &str) {
    let Some(o) = c.object(
        v,
        field,
        &["provider", "name", "version"],
        &["provider", "name", "version"],
    ) else {
        return;
    };
    for key in ["provider", "name"] {
        let f = join(field, key);
        if let Some(s) = o.get(key).and_then(|v| c.string(v, &f, 1, 64)) {
            if !s
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
            {
                c.err(
                    &f,
                    format!("{s:?} may only contain letters, digits, '.' and '-'"),
                );
            }
        }
    }
    let f = join(field, "version");
    if let Some(s) = o
        .get("version")
        .and_then(|v| c.string(v, &f, 1, usize::MAX))
    {
        let parts: Vec<&str> = s.split('.').collect();
        let numeric = parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && {
                let t = p.trim_start_matches('0');
                t.len() < 10 && t.parse::<u64>().unwrap_or(0) <= 2_147_483_647
            }
        });
        if !(2..=4).contains(&parts.len()) || !numeric {
            c.err(
                &f,
                format!(
                    "{s:?} must be 2 to 4 dot-separated numbers of 0 to 2147483647 (e.g. 1.0, 2024.1.31)"
                ),
            );
        }
    }
}

fn check_compatibility(c: &mut Check, v: &Value) {
    let Some(sets) = c.array(v, "compatibility", 1, MAX_COMPATIBILITY_SETS) else {
        return;
    };
    for (i, set) in sets.iter().enumerate() {
        let f = format!("compatibility[{i}]");
        let Some(o) = c.object(set, &f, &[], &[]) else {
            continue;
        };
        if o.is_empty() || o.len() > MAX_COMPATIBILITY_PROPERTIES {
            c.err(
                &f,
                format!(
                    "has {} properties; allowed: 1 to {MAX_COMPATIBILITY_PROPERTIES}",
                    o.len()
                ),
            );
        }
        for (k, val) in o {
            let n = k.chars().count();
            if !(1..=32).contains(&n) {
                c.err(
                    &f,
                    format!("property name {k:?} has {n} characters; allowed: 1 to 32"),
                );
            }
            c.string(val, &join(&f, k), 1, 64);
        }
    }
}

fn check_hashes(c: &mut Check, v: &Value, field: &str) {
    let Some(o) = c.object(v, field, &["sha256"], &[]) else {
        return;
    };
    if o.len() > MAX_HASHES {
        c.err(
            field,
            format!("has {} algorithms; allowed: at most {MAX_HASHES}", o.len()),
        );
    }
    for (alg, h) in o {
        let f = join(field, alg);
        let n = alg.chars().count();
        if !(1..=10).contains(&n) {
            c.err(
                &f,
                format!("algorithm name {alg:?} has {n} characters; allowed: 1 to 10"),
            );
        }
        let Some(s) = h.as_str() else {
            c.err(&f, "must be a base64 string");
            continue;
        };
        match decode_base64(s) {
            None => c.err(&f, format!("{s:?} is not base64")),
            Some(d) if alg == "sha256" && d.len() != 32 => c.err(
                &f,
                format!("decodes to {} bytes; a SHA-256 has 32", d.len()),
            ),
            Some(_) => {}
        }
    }
}

/// Checks a file entry or an item of `relatedFiles` (the schema allows further properties in
/// both); returns its filename and size.
fn check_file(c: &mut Check, v: &Value, field: &str) -> Option<(String, u64)> {
    let o = c.object(v, field, &["filename", "sizeInBytes", "hashes"], &[])?;
    let name = o
        .get("filename")
        .and_then(|n| c.string(n, &join(field, "filename"), 1, 255))
        .map(str::to_string);
    let size = o.get("sizeInBytes").and_then(|s| {
        let f = join(field, "sizeInBytes");
        match s.as_u64() {
            Some(n) if (1..=MAX_FILE_SIZE).contains(&n) => Some(n),
            _ => {
                c.err(
                    &f,
                    format!("{s} is outside the allowed 1 to {MAX_FILE_SIZE} bytes (2 GiB)"),
                );
                None
            }
        }
    });
    if let Some(h) = o.get("hashes") {
        check_hashes(c, h, &join(field, "hashes"));
    }
    if let Some(p) = o.get("properties") {
        c.object(p, &join(field, "properties"), &[], &[]);
    }
    Some((name?, size.unwrap_or(0)))
}

fn check_files(c: &mut Check, v: &Value, filenames: &mut Vec<String>) {
    let Some(files) = c.array(v, "files", 0, MAX_FILES) else {
        return;
    };
    let mut total = 0u64;
    let seen = |c: &mut Check, name: String, field: &str, names: &mut Vec<String>| {
        if names.contains(&name) {
            c.err(
                field,
                format!("{name:?} is named twice; file names must be unique"),
            );
        } else {
            names.push(name);
        }
    };
    let mut all_names: Vec<String> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let f = format!("files[{i}]");
        if let Some((name, size)) = check_file(c, file, &f) {
            total += size;
            seen(c, name.clone(), &join(&f, "filename"), &mut all_names);
            filenames.push(name);
        }
        let Some(o) = file.as_object() else { continue };
        let handler = o.get("downloadHandler");
        let handler_id = handler.and_then(|h| {
            let hf = join(&f, "downloadHandler");
            let ho = c.object(h, &hf, &["id"], &[])?;
            let id = ho.get("id")?;
            check_handler_id(c, id, &join(&hf, "id"))
        });
        let Some(related) = o.get("relatedFiles") else {
            continue;
        };
        let rf = join(&f, "relatedFiles");
        let Some(items) = c.array(related, &rf, 0, MAX_RELATED_FILES) else {
            continue;
        };
        if !items.is_empty() && handler.is_none() {
            c.err(
                &join(&f, "downloadHandler"),
                format!(
                    "is required with relatedFiles (e.g. {{\"id\": \"{DELTA_DOWNLOAD_HANDLER}\"}})"
                ),
            );
        }
        for (k, item) in items.iter().enumerate() {
            let f2 = format!("{rf}[{k}]");
            if let Some((name, _)) = check_file(c, item, &f2) {
                seen(c, name, &join(&f2, "filename"), &mut all_names);
            }
            if handler_id.as_deref() != Some(DELTA_DOWNLOAD_HANDLER) {
                continue;
            }
            let pf = join(&f2, "properties");
            let Some(props) = item.get("properties").and_then(Value::as_object) else {
                c.err(
                    &pf,
                    "is required for microsoft/delta:1 (microsoft.sourceFileHashAlgorithm, microsoft.sourceFileHash)",
                );
                continue;
            };
            let alg = "microsoft.sourceFileHashAlgorithm";
            if props.get(alg).and_then(Value::as_str) != Some("sha256") {
                c.err(&join(&pf, alg), "must be \"sha256\"");
            }
            let key = "microsoft.sourceFileHash";
            match props.get(key).and_then(Value::as_str) {
                Some(h) if decode_base64(h).is_some_and(|d| d.len() == 32) => {}
                _ => c.err(&join(&pf, key), "must be the base64 SHA-256 of the source"),
            }
        }
    }
    if total > MAX_FILE_SIZE {
        c.err(
            "files",
            format!("sizes add up to {total} bytes; allowed: at most {MAX_FILE_SIZE} (2 GiB)"),
        );
    }
}

/// Checks a handler id (`^\S+/\S+:\d{1,5}$`, 5–32 characters); returns it when valid.
fn check_handler_id(c: &mut Check, v: &Value, field: &str) -> Option<String> {
    let s = c.string(v, field, 5, 32)?;
    let ok = s.split_once('/').is_some_and(|(a, rest)| {
        rest.rsplit_once(':').is_some_and(|(b, n)| {
            !a.is_empty()
                && !b.is_empty()
                && !s.chars().any(char::is_whitespace)
                && (1..=5).contains(&n.len())
                && n.bytes().all(|d| d.is_ascii_digit())
        })
    });
    if !ok {
        c.err(
            field,
            format!("{s:?} must look like <vendor>/<name>:<version>, e.g. {DEFAULT_HANDLER}"),
        );
        return None;
    }
    Some(s.to_string())
}

fn check_instructions(c: &mut Check, v: &Value, filenames: &[String]) {
    let Some(o) = c.object(v, "instructions", &["steps"], &["steps"]) else {
        return;
    };
    let Some(steps) = o
        .get("steps")
        .and_then(|s| c.array(s, "instructions.steps", 1, MAX_STEPS))
    else {
        return;
    };
    for (i, step) in steps.iter().enumerate() {
        let f = format!("instructions.steps[{i}]");
        let kind = step.get("type").and_then(Value::as_str).unwrap_or("inline");
        match kind {
            "inline" => {
                let Some(s) = c.object(
                    step,
                    &f,
                    &["handler", "files"],
                    &[
                        "type",
                        "description",
                        "handler",
                        "files",
                        "handlerProperties",
                    ],
                ) else {
                    continue;
                };
                if let Some(h) = s.get("handler") {
                    check_handler_id(c, h, &join(&f, "handler"));
                }
                let ff = join(&f, "files");
                if let Some(names) = s.get("files").and_then(|v| c.array(v, &ff, 1, MAX_FILES)) {
                    for (k, n) in names.iter().enumerate() {
                        let nf = format!("{ff}[{k}]");
                        if let Some(n) = c.string(n, &nf, 1, 255) {
                            if !filenames.iter().any(|x| x == n) {
                                c.err(&nf, format!("{n:?} is not listed in files"));
                            }
                        }
                    }
                }
                if let Some(p) = s.get("handlerProperties") {
                    c.object(p, &join(&f, "handlerProperties"), &[], &[]);
                }
            }
            "reference" => {
                if let Some(s) = c.object(
                    step,
                    &f,
                    &["type", "updateId"],
                    &["type", "description", "updateId"],
                ) {
                    if let Some(u) = s.get("updateId") {
                        check_update_id(c, u, &join(&f, "updateId"));
                    }
                }
            }
            other => c.err(
                &join(&f, "type"),
                format!("{other:?} must be \"inline\" or \"reference\""),
            ),
        }
        if let Some(d) = step.get("description") {
            c.string(d, &join(&f, "description"), 1, 64);
        }
    }
}

/// Strict standard base64 (RFC 4648 with padding); `None` when malformed.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, q) in b.chunks(4).enumerate() {
        let last = i + 1 == b.len() / 4;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &ch in &q[..4 - pad] {
            n = n << 6 | val(ch)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Key order of the written manifest (the order of Microsoft's documentation); other keys
/// follow in alphabetical order.
const KEY_ORDER: &[&str] = &[
    "$schema",
    "updateId",
    "provider",
    "name",
    "version",
    "isDeployable",
    "description",
    "compatibility",
    "instructions",
    "steps",
    "type",
    "handler",
    "files",
    "handlerProperties",
    "filename",
    "sizeInBytes",
    "hashes",
    "sha256",
    "relatedFiles",
    "properties",
    "microsoft.sourceFileHashAlgorithm",
    "microsoft.sourceFileHash",
    "downloadHandler",
    "id",
    "manifestVersion",
    "createdDateTime",
];

/// Pretty JSON (two-space indent) with object keys in the order of Microsoft's documentation
/// (other keys after them, alphabetically), ending in a newline.
pub fn to_pretty_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out.push('\n');
    out
}

fn write_value(out: &mut String, v: &Value, indent: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(o) if !o.is_empty() => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_by_key(|k| {
                (
                    KEY_ORDER
                        .iter()
                        .position(|x| x == k)
                        .unwrap_or(KEY_ORDER.len()),
                    k.as_str(),
                )
            });
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                write_value(out, &o[k.as_str()], indent + 1);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, item) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_value(out, item, indent + 1);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601_utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59Z");
        assert!(is_iso8601("2020-10-02T22:18:04.9446744Z"));
        assert!(is_iso8601("2020-10-02T22:18:04+02:00"));
        assert!(!is_iso8601("2020-13-02T22:18:04Z"));
        assert!(!is_iso8601("2020-10-02 22:18:04Z"));
        assert!(!is_iso8601("2020-10-02T22:18:04"));
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..40usize {
            let data: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode_base64(&base64(&data)).unwrap(), data);
        }
        assert!(decode_base64("YQ=").is_none());
        assert!(decode_base64("Y===").is_none());
        assert!(decode_base64("YQ==YQ==").is_none());
        assert!(decode_base64("Y Q=").is_none());
    }

    fn sample() -> ImportManifest {
        ImportManifest {
            update_id: UpdateId {
                provider: "Contoso".into(),
                name: "Toaster".into(),
                version: "1.2".into(),
            },
            description: None,
            compatibility: vec![vec![
                ("manufacturer".into(), "Contoso".into()),
                ("model".into(), "Toaster".into()),
            ]],
            handler: DEFAULT_HANDLER.into(),
            handler_properties: [("installedCriteria".to_string(), json!("1.2"))]
                .into_iter()
                .collect(),
            target: FileInfo {
                filename: "t.swu".into(),
                size: 1000,
                sha256: [1; 32],
            },
            extra_files: vec![],
            deltas: vec![DeltaFile {
                file: FileInfo {
                    filename: "s-to-t.delta".into(),
                    size: 10,
                    sha256: [2; 32],
                },
                source_sha256: [3; 32],
            }],
            created: iso8601_utc(0),
        }
    }

    #[test]
    fn built_manifest_is_valid_and_ordered() {
        let v = sample().to_json();
        assert_eq!(validate(&v), vec![]);
        let text = to_pretty_json(&v);
        let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(pos("updateId") < pos("compatibility"));
        assert!(pos("compatibility") < pos("instructions"));
        assert!(pos("manifestVersion") < pos("createdDateTime"));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn related_files_may_share_a_source_but_not_a_name() {
        let mut m = sample();
        let mut fallback = m.deltas[0].clone();
        fallback.file.filename = "s-to-t.standard.delta".into();
        fallback.file.sha256 = [4; 32];
        m.deltas.push(fallback.clone());
        let mut v = m.to_json();
        // Properties the schema leaves open: in a file, a related file, the download handler.
        v["files"][0]["relatedFiles"][1]["note"] = json!("fallback");
        v["files"][0]["downloadHandler"]["note"] = json!(1);
        v["files"][0]["properties"] = json!({"k": "v"});
        assert_eq!(validate(&v), vec![]);

        m.deltas[1].file.filename = m.deltas[0].file.filename.clone();
        let fields: Vec<String> = validate(&m.to_json())
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["files[0].relatedFiles[1].filename"]);
    }

    #[test]
    fn hashes_follow_the_schema() {
        let mut v = sample().to_json();
        let h = base64(&[9; 32]);
        v["files"][0]["hashes"]["sha512"] = json!(h);
        assert_eq!(validate(&v), vec![], "a second algorithm is allowed");
        v["files"][0]["hashes"]["md5"] = json!(h);
        v["files"][0]["relatedFiles"][0]["hashes"]["sha3-256-long"] = json!(h);
        let fields: Vec<String> = validate(&v).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "files[0].hashes",
                "files[0].relatedFiles[0].hashes.sha3-256-long"
            ]
        );
        v["$schema"] = json!("");
        v["files"][0]["hashes"] = json!({ "sha256": h });
        v["files"][0]["relatedFiles"][0]["hashes"] = json!({ "sha256": h });
        assert_eq!(validate(&v), vec![], "$schema may be empty");
    }

    #[test]
    fn broken_rules_name_their_fields() {
        let mut m = sample();
        m.update_id.provider = "Contoso Ltd".into();
        m.update_id.version = "1".into();
        m.target.size = 2_684_354_560;
        m.handler = "swupdate".into();
        m.deltas = (0..5)
            .map(|i| DeltaFile {
                file: FileInfo {
                    filename: format!("d{i}"),
                    size: 1,
                    sha256: [0; 32],
                },
                source_sha256: [i; 32],
            })
            .collect();
        m.compatibility.push(vec![]);
        let mut v = m.to_json();
        v["extra"] = json!(1);
        let errors = validate(&v);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "updateId.provider",
            "updateId.version",
            "files[0].sizeInBytes",
            "files[0].relatedFiles",
            "instructions.steps[0].handler",
            "compatibility[1]",
            "extra",
        ] {
            assert!(fields.contains(&f), "{f} missing in {errors:?}");
        }
    }
}
