//! Import-manifest helpers: the `relatedFiles` properties of a delta and the device's source
//! cache path (`docs/C-API.md` §7).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::tool::error::{fail, ToolResult};

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The agent's hash encoding for cache file names: `+` → `_2B`, `/` → `_2F`, `=` → `_3D`.
pub fn encode_cache_hash(b64: &str) -> String {
    b64.replace('+', "_2B")
        .replace('/', "_2F")
        .replace('=', "_3D")
}

/// The agent's provider sanitizing: anything but ASCII alphanumerics and `-` becomes `_`.
pub fn sanitize_provider(p: &str) -> String {
    p.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Device cache path of a source with SHA-256 `digest`.
pub fn cache_path(provider: &str, digest: &[u8]) -> String {
    format!(
        "/var/lib/adu/sdc/{}/sha256-{}",
        sanitize_provider(provider),
        encode_cache_hash(&base64(digest))
    )
}

/// Size and SHA-256 of the file at `path`, read in 1 MiB pieces.
pub fn hash_file(path: &Path) -> ToolResult<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).map_err(|e| fail(path.display(), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| fail(path.display(), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize().into()))
}

/// JSON with the related-file properties and the cache path for the source at `path`.
pub fn source_info(path: &Path, provider: Option<&str>) -> ToolResult<serde_json::Value> {
    let (size, digest) = hash_file(path)?;
    let b64 = base64(&digest);
    let cache = match provider {
        Some(p) if !p.is_empty() => cache_path(p, &digest),
        _ => format!(
            "/var/lib/adu/sdc/<provider>/sha256-{}",
            encode_cache_hash(&b64)
        ),
    };
    Ok(serde_json::json!({
        "source": {
            "fileName": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "sizeInBytes": size,
            "sha256": adudiff_core::format::hex(&digest),
        },
        "relatedFileProperties": {
            "microsoft.sourceFileHashAlgorithm": "sha256",
            "microsoft.sourceFileHash": b64,
        },
        "deviceSourceCachePath": cache,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_cache_path() {
        let digest: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
                        [i * 2..i * 2 + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(
            base64(&digest),
            "qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc="
        );
        assert_eq!(
            cache_path("Contoso.Ltd", &digest),
            "/var/lib/adu/sdc/Contoso_Ltd/sha256-qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A_2B4XSmaGSpEc_3D"
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
