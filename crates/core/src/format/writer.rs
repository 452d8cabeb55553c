//! Standard v2 writer, byte-identical to upstream's `diffc_write_diff`.
//!
//! Layout and ordering rules are in `docs/FORMAT.md` §3 and §3.4: recipe sets grouped by result
//! item and sorted by item order, recipes inside a set sorted by type name, numbers and items and
//! de-duplicated, the fixed 8-name type table, the inline-assets blob stored verbatim and the
//! remainder stored raw-deflated (stock zlib, level 9, memLevel 9) with its
//! `zlib_decompression(raw)` recipe.

use std::cmp::Ordering;
use std::io::Write;

use sha2::{Digest, Sha256};

use crate::codec::deflate_exact;
use crate::error::{code, Error, Result};
use crate::format::model::{
    Item, Recipe, RecipeKind, ZlibInit, EXTENDED_REVISION_1, EXTENDED_REVISION_2, HASH_ALG_MD5,
    HASH_ALG_SHA256,
};

/// Everything `diffc_write_diff` serializes: header items, recipes and the two blobs.
#[derive(Clone, Debug, Default)]
pub struct DeltaBuilder {
    /// The item applying produces.
    pub target: Item,
    /// The source the delta was made against (empty item = none).
    pub source: Item,
    /// All recipes, in any order (the writer sorts and de-duplicates them).
    pub recipes: Vec<Recipe>,
    /// Inline-assets blob (`diffc_set_inline_assets`); `None` writes an empty section.
    pub inline_assets: Option<Vec<u8>>,
    /// Uncompressed remainder (`diffc_set_remainder`); `None` writes an empty section, `Some`
    /// (even empty) writes the raw-deflated blob.
    pub remainder: Option<Vec<u8>>,
}

/// SHA-256 item of `bytes`.
pub fn item_of(bytes: &[u8]) -> Item {
    Item::with_sha256(bytes.len() as u64, Sha256::digest(bytes).into())
}

/// Upstream's item order: length, number of hashes, then digests (MD5, then SHA-256).
pub fn cmp_items(a: &Item, b: &Item) -> Ordering {
    let count = |i: &Item| i.md5.is_some() as u8 + i.sha256.is_some() as u8;
    a.length
        .cmp(&b.length)
        .then_with(|| count(a).cmp(&count(b)))
        .then_with(|| match (&a.md5, &b.md5) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => Ordering::Equal,
        })
        .then_with(|| match (&a.sha256, &b.sha256) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => Ordering::Equal,
        })
}

fn cmp_item_lists(a: &[Item], b: &[Item]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| cmp_items(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

/// Upstream's recipe order inside a set: type name, numbers (count, then values), items.
fn cmp_recipes(a: &Recipe, b: &Recipe) -> Ordering {
    a.kind
        .name()
        .as_bytes()
        .cmp(b.kind.name().as_bytes())
        .then_with(|| a.numbers.len().cmp(&b.numbers.len()))
        .then_with(|| a.numbers.cmp(&b.numbers))
        .then_with(|| cmp_item_lists(&a.items, &b.items))
}

struct Out<'a> {
    w: &'a mut dyn Write,
    written: u64,
}

impl Out<'_> {
    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| {
            Error::new(
                code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
                format!("writing delta: {e}"),
            )
        })?;
        self.written += b.len() as u64;
        Ok(())
    }
    fn u32(&mut self, v: u32) -> Result<()> {
        self.raw(&v.to_be_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<()> {
        self.raw(&v.to_be_bytes())
    }
    fn string(&mut self, s: &str) -> Result<()> {
        self.u64(s.len() as u64)?;
        self.raw(s.as_bytes())
    }
    fn item(&mut self, item: &Item) -> Result<()> {
        self.u64(item.length)?;
        if item.length == 0 {
            return Ok(());
        }
        let sha = item.sha256.ok_or_else(|| {
            Error::new(
                32002,
                format!("item_definition_no_sha256_hash: {}", item.describe()),
            )
        })?;
        self.u32(HASH_ALG_SHA256)?;
        self.raw(&sha)
    }
}

/// Serializes `b` into `w`; returns the number of bytes written. A delta whose recipes are all
/// built-in is standard v2 (byte-identical to upstream's writer); one that uses a recipe of the
/// extended format is written in the extended format (docs/EXTENDED-FORMAT.md): version
/// [`EXTENDED_REVISION_2`], the extended recipe type table, and the recipe sets packed in one
/// zstd frame ([`crate::format::packed`]; [`EXTENDED_REVISION_1`], unpacked, when packing would
/// leave the reader's bounds); the layout otherwise unchanged.
pub fn write_delta(b: &DeltaBuilder, w: &mut dyn Write) -> Result<u64> {
    let _ = HASH_ALG_MD5;
    let mut recipes: Vec<Recipe> = b
        .recipes
        .iter()
        .filter(|r| r.result.length != 0)
        .cloned()
        .collect();

    // Remainder: raw deflate (level 9, memLevel 9) plus its decompression recipe.
    let remainder_blob = match &b.remainder {
        None => None,
        Some(raw) => {
            let compressed = deflate_exact(raw, ZlibInit::Raw, 9)?;
            let compressed_item = item_of(&compressed);
            if !raw.is_empty() {
                recipes.push(Recipe {
                    kind: RecipeKind::ZlibDecompression,
                    result: item_of(raw),
                    numbers: vec![ZlibInit::Raw as u64],
                    items: vec![compressed_item.clone()],
                });
            }
            Some((compressed_item, compressed))
        }
    };

    for r in &recipes {
        if r.items.iter().any(|i| i.same_as(&r.result)) {
            return Err(Error::new(
                crate::error::code::RECIPE_SELF_REFERENTIAL,
                format!(
                    "{} recipe for {} uses its own result",
                    r.kind.name(),
                    r.result.describe()
                ),
            ));
        }
    }

    recipes.sort_by(|x, y| cmp_items(&x.result, &y.result).then_with(|| cmp_recipes(x, y)));
    recipes.dedup_by(|x, y| cmp_items(&x.result, &y.result).is_eq() && cmp_recipes(x, y).is_eq());

    let extended = recipes.iter().any(|r| r.kind.is_extended());
    // The extended table runs up to the highest id used: a delta with only
    // `deflate_reconstruct` stays readable by appliers that know no later type.
    let highest = recipes.iter().map(|r| r.kind.id()).max().unwrap_or(0) as usize;
    let table: &[RecipeKind] = if extended {
        &RecipeKind::EXTENDED[..=highest]
    } else {
        &RecipeKind::ALL
    };
    // Extended deltas pack their recipe sets (revision 2) unless packing would leave the
    // reader's bounds; then they are stored as in revision 1.
    let packed = if extended {
        let mut plain = Vec::new();
        write_recipe_sets(
            &mut Out {
                w: &mut plain,
                written: 0,
            },
            &recipes,
        )?;
        crate::format::packed::pack(&plain)?
    } else {
        None
    };
    let version = match (extended, &packed) {
        (false, _) => 2,
        (true, Some(_)) => EXTENDED_REVISION_2,
        (true, None) => EXTENDED_REVISION_1,
    };
    let mut out = Out { w, written: 0 };
    out.raw(crate::format::reader::MAGIC)?;
    out.u64(version)?;
    out.item(&b.target)?;
    out.item(&b.source)?;
    out.u32(table.len() as u32)?;
    for kind in table {
        out.string(kind.name())?;
    }
    match &packed {
        Some(section) => out.raw(section)?,
        None => write_recipe_sets(&mut out, &recipes)?,
    }
    match &b.inline_assets {
        Some(ia) if !ia.is_empty() => {
            out.item(&item_of(ia))?;
            out.raw(ia)?;
        }
        _ => out.u64(0)?,
    }
    match &remainder_blob {
        Some((item, bytes)) => {
            out.item(item)?;
            out.raw(bytes)?;
        }
        None => out.u64(0)?,
    }
    out.u32(0)?; // nested archives: never written
    Ok(out.written)
}

/// Writes the recipe sets of the sorted, de-duplicated `recipes`: the set count, then each set
/// (recipe count, shared result item, its recipes).
fn write_recipe_sets(out: &mut Out, recipes: &[Recipe]) -> Result<()> {
    let sets: Vec<&[Recipe]> = recipes
        .chunk_by(|x, y| cmp_items(&x.result, &y.result).is_eq())
        .collect();
    out.u64(sets.len() as u64)?;
    for set in sets {
        out.u64(set.len() as u64)?;
        out.item(&set[0].result)?;
        for r in set {
            out.u32(r.kind.id())?;
            out.u64(r.numbers.len() as u64)?;
            for n in &r.numbers {
                out.u64(*n)?;
            }
            out.u64(r.items.len() as u64)?;
            for i in &r.items {
                out.item(i)?;
            }
        }
    }
    Ok(())
}

/// Serializes `b` into a new byte vector.
pub fn write_delta_to_vec(b: &DeltaBuilder) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    write_delta(b, &mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_builder() -> DeltaBuilder {
        let source = item_of(b"hello world\n");
        let target = item_of(b"hello");
        DeltaBuilder {
            target: target.clone(),
            source: source.clone(),
            recipes: vec![Recipe {
                kind: RecipeKind::Slice,
                result: target,
                numbers: vec![0],
                items: vec![source],
            }],
            inline_assets: None,
            remainder: None,
        }
    }

    #[test]
    fn worked_example_is_byte_exact() {
        let bytes = write_delta_to_vec(&hello_builder()).unwrap();
        assert_eq!(bytes.len(), 428);
        assert_eq!(&bytes[..4], b"PAMZ");
        assert_eq!(&bytes[0x64..0x68], &[0, 0, 0, 8]);
        assert_eq!(&bytes[0x114..0x11C], &1u64.to_be_bytes());
        assert_eq!(&bytes[0x150..0x154], &[0, 0, 0, 2]);
        assert_eq!(&bytes[0x198..], &[0u8; 20][..]);
    }

    #[test]
    fn duplicates_are_dropped_and_sets_sorted() {
        let mut b = hello_builder();
        b.recipes.push(b.recipes[0].clone());
        let bytes = write_delta_to_vec(&b).unwrap();
        assert_eq!(bytes.len(), 428);
    }

    fn extended_builder() -> DeltaBuilder {
        let mut b = hello_builder();
        let plain = item_of(b"plain");
        let blob = item_of(b"blob");
        b.recipes.push(Recipe {
            kind: RecipeKind::DeflateReconstruct,
            result: item_of(b"deflated"),
            numbers: vec![1, 1],
            items: vec![plain, blob],
        });
        b
    }

    /// A revision-2 delta of [`extended_builder`]'s kind split at its packed section: the offset
    /// where the section starts (after the type table, whose last name is
    /// `deflate_reconstruct`), the unpacked recipe sets, and the offset after the section.
    fn split_packed(bytes: &[u8]) -> (usize, Vec<u8>, usize) {
        use crate::format::reader::{Cursor, Endian};
        let name = b"deflate_reconstruct";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let mut cur = Cursor::new(
            crate::io::SharedBytes::from_vec(bytes.to_vec()),
            Endian::Big,
        );
        cur.bytes(at as u64).unwrap();
        let plain = crate::format::packed::unpack(&mut cur).unwrap();
        (at, plain.to_vec(), cur.position() as usize)
    }

    /// The revision-1 form of a revision-2 delta: the recipe sets unpacked in place, version
    /// `ADUDIFF\x01`.
    fn as_revision_1(bytes: &[u8]) -> Vec<u8> {
        let (at, plain, rest) = split_packed(bytes);
        let mut v1 = bytes[..at].to_vec();
        v1[4..12].copy_from_slice(b"ADUDIFF\x01");
        v1.extend_from_slice(&plain);
        v1.extend_from_slice(&bytes[rest..]);
        v1
    }

    #[test]
    fn extended_recipes_switch_to_the_extended_header() {
        let bytes = write_delta_to_vec(&extended_builder()).unwrap();
        assert_eq!(&bytes[4..12], b"ADUDIFF\x02");
        let parse =
            |b: &[u8]| crate::format::parse_delta(crate::io::SharedBytes::from_vec(b.to_vec()));
        let delta = parse(&bytes).unwrap();
        assert_eq!(delta.format, crate::format::Format::Extended);
        assert!(delta
            .recipes
            .iter()
            .any(|r| r.kind == RecipeKind::DeflateReconstruct && r.numbers == [1, 1]));
        // Revision 1 (recipe sets not packed) is still read, to the same recipes.
        let v1 = as_revision_1(&bytes);
        assert_eq!(parse(&v1).unwrap().recipes, delta.recipes);
        // The revision-1 bytes labelled version 2: id 8 is not a standard recipe.
        let mut v2 = v1.clone();
        v2[4..12].copy_from_slice(&2u64.to_be_bytes());
        assert_eq!(parse(&v2).unwrap_err().code, code::DIFF_INVALID_RECIPE_TYPE);
        // Version 3 (Microsoft's next number) and revision 3 of ours are never read.
        for version in [3u64, u64::from_be_bytes(*b"ADUDIFF\x03")] {
            let mut other = bytes.clone();
            other[4..12].copy_from_slice(&version.to_be_bytes());
            assert_eq!(parse(&other).unwrap_err().code, code::DIFF_VERSION_WRONG);
        }
        // A type table that names id 8 differently is refused, in either revision.
        for original in [bytes, v1] {
            let at = original
                .windows(19)
                .position(|w| w == b"deflate_reconstruct")
                .unwrap();
            let mut renamed = original;
            renamed[at] = b'D';
            assert_eq!(
                parse(&renamed).unwrap_err().code,
                code::DIFF_INVALID_RECIPE_TYPE
            );
        }
    }

    #[test]
    fn packed_recipe_sets_are_checked() {
        let bytes = write_delta_to_vec(&extended_builder()).unwrap();
        let (at, mut plain, rest) = split_packed(&bytes);
        let parse = |b: Vec<u8>| crate::format::parse_delta(crate::io::SharedBytes::from_vec(b));
        // One byte more unpacked than the frame holds, and one less.
        for delta in [1i64, -1] {
            let mut b = bytes.clone();
            let n = u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
            b[at..at + 8].copy_from_slice(&(n as i64 + delta).to_be_bytes());
            assert_eq!(parse(b).unwrap_err().code, code::EXT_COOKBOOK_MALFORMED);
        }
        // A packed cookbook with a byte after its last set.
        plain.push(0);
        let mut trailing = bytes[..at].to_vec();
        trailing.extend_from_slice(&crate::format::packed::pack(&plain).unwrap().unwrap());
        trailing.extend_from_slice(&bytes[rest..]);
        let e = parse(trailing).unwrap_err();
        assert_eq!(e.code, code::EXT_COOKBOOK_MALFORMED);
        assert!(
            e.message.contains("after the last packed recipe set"),
            "{e}"
        );
    }

    #[test]
    fn recipe_sets_that_pack_too_well_stay_unpacked() {
        // A chain of 5,000 copies of one item packs far beyond the reader's ratio bound: the
        // writer stores it as revision 1, which reads back to the same recipes.
        let mut b = extended_builder();
        let piece = item_of(b"piece");
        b.recipes.push(Recipe {
            kind: RecipeKind::Chain,
            result: Item::with_sha256(5 * 5000, [9; 32]),
            numbers: vec![],
            items: vec![piece; 5000],
        });
        let bytes = write_delta_to_vec(&b).unwrap();
        assert_eq!(&bytes[4..12], b"ADUDIFF\x01");
        let delta = crate::format::parse_delta(crate::io::SharedBytes::from_vec(bytes)).unwrap();
        assert!(delta.recipes.iter().any(|r| r.items.len() == 5000));
    }

    #[test]
    fn deltas_without_extended_recipes_stay_version_2() {
        let bytes = write_delta_to_vec(&hello_builder()).unwrap();
        assert_eq!(&bytes[4..12], &2u64.to_be_bytes());
    }
}
