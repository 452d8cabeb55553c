//! Choosing the source member a target member is diffed against (upstream's order: same name,
//! then a "similar" name — runs of digits as wildcards, compression suffix ignored — then the
//! same size).

/// Name with runs of ASCII digits replaced by `*` and a `.gz`/`.zst`/`.xz` suffix dropped.
pub fn wildcard_name(name: &str) -> String {
    let base = [".gz", ".zst", ".zstd", ".xz", ".bz2"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let mut out = String::with_capacity(base.len());
    let mut in_digits = false;
    for c in base.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A candidate basis: name and size.
pub struct Candidate<'a> {
    /// Member name.
    pub name: &'a str,
    /// Payload size (uncompressed when known).
    pub size: u64,
}

/// Index of the best basis for a target member called `name` of `size` bytes, with the reason.
pub fn best_basis(
    name: &str,
    size: u64,
    candidates: &[Candidate<'_>],
) -> Option<(usize, &'static str)> {
    if let Some(i) = candidates.iter().position(|c| c.name == name) {
        return Some((i, "same name"));
    }
    let w = wildcard_name(name);
    if let Some(i) = candidates.iter().position(|c| wildcard_name(c.name) == w) {
        return Some((i, "similar name"));
    }
    if let Some(i) = candidates.iter().position(|c| c.size == size) {
        return Some((i, "same size"));
    }
    // Last resort: the closest size within a factor of two.
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.size > 0 && c.size * 2 >= size && c.size <= size * 2)
        .min_by_key(|(_, c)| c.size.abs_diff(size))
        .map(|(i, _)| (i, "similar size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_order() {
        let c = [
            Candidate {
                name: "rootfs-1.2.ext4.gz",
                size: 100,
            },
            Candidate {
                name: "vmlinuz",
                size: 50,
            },
            Candidate {
                name: "fw.bin",
                size: 77,
            },
        ];
        assert_eq!(best_basis("vmlinuz", 1, &c), Some((1, "same name")));
        assert_eq!(
            best_basis("rootfs-1.3.ext4", 1, &c),
            Some((0, "similar name"))
        );
        assert_eq!(best_basis("other", 77, &c), Some((2, "same size")));
        assert_eq!(best_basis("other", 60, &c), Some((1, "similar size")));
        assert_eq!(best_basis("other", 1000, &c), None);
    }
}
