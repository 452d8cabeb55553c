//! Reader for legacy PAMZ deltas (version 0, written by the 1.x toolchain).
//!
//! Layout: `docs/FORMAT.md` §4; recipe translation: §4.1 and §6.6. Both byte orders are
//! accepted (`docs/FORMAT.md` §1): the order is detected from the target hash
//! algorithm id at offset 20. Legacy recipes are translated into standard [`Recipe`]s while
//! reading; `nested_diff_recipe`s are recorded as [`LegacyNestedDelta`]s for the planner, which
//! resolves the embedded delta blob and parses it with [`parse_legacy_nested`].
//!
//! The legacy internal items (`diff`, `inline_assets`, `remainder.compressed`,
//! `remainder.uncompressed`) carry no hash; they are [`Item::internal`] items bound by a numeric id
//! that is unique across the top-level delta and all of its nested deltas (this fixes upstream's
//! conflation of equal-length internal items, `docs/FORMAT.md` §4.3).
//!
//! Nothing here trusts a size field: blobs are views of the input, vectors are only pre-sized
//! from what the remaining bytes could hold, counts drive loops that stop at the first short read,
//! and recursion through nested recipes is bounded by [`MAX_RECIPE_DEPTH`].

use crate::error::{code, Error, Result};
use crate::format::model::{
    Delta, DeltaBlob, Format, Item, LegacyNestedDelta, Recipe, RecipeKind, HASH_ALG_MD5,
    HASH_ALG_SHA256,
};
use crate::format::reader::{Cursor, Endian};
use crate::io::SharedBytes;

/// Deepest nesting of recipes inside archive-item parameters that the reader accepts.
pub const MAX_RECIPE_DEPTH: u32 = 64;

/// Internal id of the top-level `diff` item (the whole delta file).
pub const DIFF_INTERNAL_ID: u32 = 1;

/// First internal id left free by [`parse_legacy`] (it always uses ids 1 to 4); pass a counter
/// starting here to [`parse_legacy_nested`] for the first nested delta.
pub const FIRST_NESTED_INTERNAL_ID: u32 = 5;

/// Legacy recipe type ids (`docs/FORMAT.md` §4.1).
mod ty {
    pub const COPY: u32 = 0;
    pub const REGION: u32 = 1;
    pub const CONCATENATION: u32 = 2;
    pub const BSDIFF: u32 = 3;
    pub const NESTED_DIFF: u32 = 4;
    pub const REMAINDER_CHUNK: u32 = 5;
    pub const INLINE_ASSET: u32 = 6;
    pub const COPY_SOURCE: u32 = 7;
    pub const ZSTD_DELTA: u32 = 8;
    pub const INLINE_ASSET_COPY: u32 = 9;
    pub const ZSTD_COMPRESSION: u32 = 10;
    pub const ZSTD_DECOMPRESSION: u32 = 11;
    pub const ALL_ZERO: u32 = 12;
    pub const GZ_DECOMPRESSION: u32 = 13;
}

/// Parameter kinds.
const PARAM_ARCHIVE_ITEM: u8 = 0;
const PARAM_NUMBER: u8 = 1;
/// Archive item type whose encoding carries an extra (ignored) u64 offset.
const ARCHIVE_ITEM_CHUNK: u8 = 1;
/// Escape value of the one-byte recipe type: a u32 type follows.
const RECIPE_TYPE_ESCAPE: u8 = 255;
/// Smallest possible encoding of a chunk: length, hash id, MD5 digest, recipe type, param count.
const MIN_CHUNK_BYTES: u64 = 8 + 4 + 16 + 1 + 1;

/// Parses a whole legacy (version 0) delta file.
///
/// Internal ids: `diff` = 1, `inline_assets` = 2, `remainder.compressed` = 3,
/// `remainder.uncompressed` = 4 (always allocated, even when empty); nested deltas continue at
/// [`FIRST_NESTED_INTERNAL_ID`].
///
/// Deviation from upstream 3.0.0: when the chunk table holds exactly one chunk that is the target
/// itself (same length and hash), upstream builds a self-referential `chain(target, [target])` and
/// fails with `33001`; we simply omit that chain, since the chunk's own recipe already produces the
/// target item.
pub fn parse_legacy(data: SharedBytes) -> Result<Delta> {
    let mut next_internal_id = DIFF_INTERNAL_ID;
    parse(data, &mut next_internal_id, true)
}

/// Parses a legacy delta embedded in another one (`nested_diff_recipe`); internal ids are taken
/// from `next_internal_id`, and no `diff` blob is created (the parent's blob item stands for it).
pub fn parse_legacy_nested(data: SharedBytes, next_internal_id: &mut u32) -> Result<Delta> {
    parse(data, next_internal_id, false)
}

/// Detects the byte order from the target hash algorithm id at offset 20. Files too short to hold
/// it are read big-endian (as upstream does), so that truncation is reported where it happens.
fn detect_endian(data: &[u8]) -> Result<Endian> {
    let Some(id) = data.get(20..24) else {
        return Ok(Endian::Big);
    };
    let id: [u8; 4] = id.try_into().expect("four bytes");
    let be = u32::from_be_bytes(id);
    let le = u32::from_le_bytes(id);
    if be == HASH_ALG_SHA256 || be == HASH_ALG_MD5 {
        Ok(Endian::Big)
    } else if le == HASH_ALG_SHA256 || le == HASH_ALG_MD5 {
        Ok(Endian::Little)
    } else {
        Err(Error::new(
            code::DIFF_BAD_HASH_TYPE,
            format!("diffs::hash::get_byte_count_for_algorithm(): Unexpected hash type: {be}"),
        ))
    }
}

/// Takes the next internal id from the counter.
fn allocate_id(next: &mut u32) -> Result<u32> {
    let id = *next;
    *next = next
        .checked_add(1)
        .ok_or_else(|| std_exception("legacy delta: internal item ids exhausted"))?;
    Ok(id)
}

/// The shared core of [`parse_legacy`] and [`parse_legacy_nested`].
fn parse(data: SharedBytes, next_internal_id: &mut u32, top_level: bool) -> Result<Delta> {
    let file_len = data.len() as u64;
    let mut cur = Cursor::new(data.clone(), Endian::Big);

    cur.magic()?;
    // Zero reads the same in both byte orders; a non-zero value is reported as upstream reads it.
    let version = cur.u64()?;
    if version != 0 {
        return Err(Error::new(
            code::DIFF_VERSION_WRONG,
            format!("Not a valid version. Expected: 0, Found: {version}"),
        ));
    }
    cur.endian = detect_endian(&data)?;
    let format = match cur.endian {
        Endian::Big => Format::LegacyBigEndian,
        Endian::Little => Format::LegacyLittleEndian,
    };

    let diff_id = if top_level {
        Some(allocate_id(next_internal_id)?)
    } else {
        None
    };
    let inline_id = allocate_id(next_internal_id)?;
    let compressed_id = allocate_id(next_internal_id)?;
    let uncompressed_id = allocate_id(next_internal_id)?;

    let mut target = Item {
        length: cur.u64()?,
        ..Item::default()
    };
    cur.hash_into(&mut target)?;
    let mut source = Item {
        length: cur.u64()?,
        ..Item::default()
    };
    if source.length != 0 {
        cur.hash_into(&mut source)?;
    }

    let mut parser = Parser {
        cur,
        source: source.clone(),
        // Lengths are patched once the sizes (stored after the chunk table) are known.
        inline_assets: Item::internal(0, inline_id),
        remainder: Item::internal(0, uncompressed_id),
        inline_offset: 0,
        remainder_offset: 0,
        recipes: Vec::new(),
        nested: Vec::new(),
    };

    let chunk_count = parser.cur.u64()?;
    let mut chunks =
        Vec::with_capacity(chunk_count.min(parser.cur.remaining() / MIN_CHUNK_BYTES) as usize);
    for _ in 0..chunk_count {
        let chunk = parser.item_identity()?;
        parser.recipe(&chunk, 0)?;
        chunks.push(chunk);
    }

    let Parser {
        mut cur,
        mut recipes,
        nested,
        ..
    } = parser;

    let inline_size = cur.u64()?;
    if inline_size > cur.remaining() {
        return Err(Error::short_read(inline_size, cur.remaining()));
    }
    let inline_offset = cur.position();
    let inline_bytes = cur.blob(inline_size)?;
    let uncompressed_size = cur.u64()?;
    let compressed_size = cur.u64()?;
    let compressed_offset = cur.position();
    let end = compressed_offset.checked_add(compressed_size);
    if end != Some(file_len) {
        return Err(Error::new(
            code::DIFF_READ_DIFF_SIZE_MISMATCH,
            format!(
                "Legacy diff size mismatch: the remainder ({compressed_size} bytes at offset \
                 {compressed_offset}) does not end at the end of the {file_len}-byte delta"
            ),
        ));
    }
    let compressed_bytes = cur.blob(compressed_size)?;

    // Patch the placeholder lengths of the internal items referenced by slice recipes.
    for recipe in &mut recipes {
        for item in &mut recipe.items {
            match item.internal {
                Some(id) if id == inline_id => item.length = inline_size,
                Some(id) if id == uncompressed_id => item.length = uncompressed_size,
                _ => {}
            }
        }
    }

    let compressed_item = Item::internal(compressed_size, compressed_id);
    if uncompressed_size != 0 {
        recipes.push(Recipe {
            kind: RecipeKind::ZlibDecompression,
            result: Item::internal(uncompressed_size, uncompressed_id),
            numbers: vec![0],
            items: vec![compressed_item.clone()],
        });
    }

    // The target is the concatenation of the chunks (see the deviation on `parse_legacy`).
    let single_chunk_is_target = chunks.len() == 1 && chunks[0].same_as(&target);
    if !single_chunk_is_target {
        add_recipe(
            &mut recipes,
            Recipe {
                kind: RecipeKind::Chain,
                result: target.clone(),
                numbers: Vec::new(),
                items: chunks,
            },
        )?;
    }

    let mut blobs = Vec::new();
    let blob_offset = |offset: u64| if top_level { offset } else { 0 };
    if let Some(id) = diff_id {
        blobs.push(DeltaBlob {
            item: Item::internal(file_len, id),
            offset: 0,
            bytes: data,
        });
    }
    if inline_size != 0 {
        blobs.push(DeltaBlob {
            item: Item::internal(inline_size, inline_id),
            offset: blob_offset(inline_offset),
            bytes: inline_bytes,
        });
    }
    if compressed_size != 0 {
        blobs.push(DeltaBlob {
            item: compressed_item,
            offset: blob_offset(compressed_offset),
            bytes: compressed_bytes,
        });
    }

    Ok(Delta {
        format,
        target,
        source,
        recipes,
        blobs,
        nested_archives: 0,
        legacy_nested: nested,
    })
}

/// Validates a translated recipe and appends it, unless its result is empty (upstream drops such
/// recipes). A result equal to one of its item ingredients → `33001`.
fn add_recipe(recipes: &mut Vec<Recipe>, recipe: Recipe) -> Result<()> {
    if let Some(item) = recipe.items.iter().find(|i| i.same_as(&recipe.result)) {
        return Err(Error::new(
            code::RECIPE_SELF_REFERENTIAL,
            format!(
                "recipe_self_referential: {} recipe for {} uses its own result ({}) as an ingredient",
                recipe.kind.name(),
                recipe.result.describe(),
                item.describe()
            ),
        ));
    }
    if recipe.result.length != 0 {
        super::push_recipe(recipes, recipe)?;
    }
    Ok(())
}

/// Error for a legacy recipe with the wrong number of ingredients.
fn bad_count(error_code: u32, what: &str, numbers: usize, items: usize) -> Error {
    let detail =
        format!("legacy {what} recipe: unexpected parameters ({numbers} numbers, {items} items)");
    if error_code == code::STANDARD_LIBRARY_EXCEPTION {
        std_exception(detail)
    } else {
        Error::new(error_code, detail)
    }
}

/// A load failure upstream reports as a bare `std::exception` (code 1), with our explanation.
fn std_exception(detail: impl std::fmt::Display) -> Error {
    Error::unresolvable(detail)
}

/// State of one legacy archive's chunk-table reader.
struct Parser {
    cur: Cursor,
    /// The header source item (`copy_source` slices it).
    source: Item,
    /// `inline_assets` internal item (length patched after the chunk table).
    inline_assets: Item,
    /// `remainder.uncompressed` internal item (length patched after the chunk table).
    remainder: Item,
    /// Running offset of `inline_asset` recipes into the inline-asset blob.
    inline_offset: u64,
    /// Running offset of `remainder_chunk` recipes into the uncompressed remainder.
    remainder_offset: u64,
    recipes: Vec<Recipe>,
    nested: Vec<LegacyNestedDelta>,
}

impl Parser {
    /// Reads `u64 length` + hash.
    fn item_identity(&mut self) -> Result<Item> {
        let mut item = Item {
            length: self.cur.u64()?,
            ..Item::default()
        };
        self.cur.hash_into(&mut item)?;
        Ok(item)
    }

    /// Reads an archive-item parameter, registering its recipe (if any) first.
    fn archive_item(&mut self, depth: u32) -> Result<Item> {
        let item_type = self.cur.u8()?;
        if item_type == ARCHIVE_ITEM_CHUNK {
            let _offset_in_target = self.cur.u64()?;
        }
        let item = self.item_identity()?;
        if self.cur.u8()? != 0 {
            self.recipe(&item, depth)?;
        }
        Ok(item)
    }

    /// Reads a recipe producing `result` and registers its translation (depth-first post-order).
    fn recipe(&mut self, result: &Item, depth: u32) -> Result<()> {
        crate::stack::check("the legacy recipe tree")?;
        if depth >= MAX_RECIPE_DEPTH {
            return Err(std_exception(format!(
                "legacy delta: recipes nested deeper than {MAX_RECIPE_DEPTH} levels"
            )));
        }
        let recipe_type = match self.cur.u8()? {
            RECIPE_TYPE_ESCAPE => self.cur.u32()?,
            t => u32::from(t),
        };
        let param_count = self.cur.u8()?;
        let mut numbers = Vec::new();
        let mut items = Vec::new();
        for _ in 0..param_count {
            match self.cur.u8()? {
                PARAM_NUMBER => numbers.push(self.cur.u64()?),
                PARAM_ARCHIVE_ITEM => items.push(self.archive_item(depth + 1)?),
                other => {
                    return Err(Error::new(
                        code::DIFF_RECIPE_PARAMETER_READ_INVALID_TYPE,
                        format!("legacy recipe parameter of unknown kind {other}"),
                    ))
                }
            }
        }
        self.translate(recipe_type, result, numbers, items)
    }

    /// Advances a running offset by `length`, returning the offset before the advance.
    fn advance(counter: &mut u64, length: u64, what: &str) -> Result<u64> {
        let offset = *counter;
        *counter = offset.checked_add(length).ok_or_else(|| {
            std_exception(format!("legacy delta: running {what} offset overflows"))
        })?;
        Ok(offset)
    }

    /// Converts one legacy recipe into its standard equivalent (`docs/FORMAT.md` §4.1, §6.6).
    fn translate(
        &mut self,
        recipe_type: u32,
        result: &Item,
        numbers: Vec<u64>,
        items: Vec<Item>,
    ) -> Result<()> {
        let (n, i) = (numbers.len(), items.len());
        let (kind, numbers, items) = match recipe_type {
            ty::COPY => return Ok(()),
            ty::REGION => {
                if n != 2 {
                    return Err(bad_count(code::STANDARD_LIBRARY_EXCEPTION, "region", n, i));
                }
                if i != 1 {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "region",
                        n,
                        i,
                    ));
                }
                (RecipeKind::Slice, vec![numbers[0]], items)
            }
            ty::CONCATENATION => (RecipeKind::Chain, numbers, items),
            ty::BSDIFF => {
                if i != 2 {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "bsdiff",
                        n,
                        i,
                    ));
                }
                (RecipeKind::BspatchDecompression, numbers, items)
            }
            ty::NESTED_DIFF => {
                if i != 2 {
                    return Err(bad_count(
                        code::STANDARD_LIBRARY_EXCEPTION,
                        "nested_diff",
                        n,
                        i,
                    ));
                }
                let mut items = items.into_iter();
                let (delta_blob, basis) = (items.next().expect("2"), items.next().expect("2"));
                // Kept even for an empty result: the planner still validates the embedded delta.
                self.nested.push(LegacyNestedDelta {
                    result: result.clone(),
                    delta_blob,
                    basis,
                });
                return Ok(());
            }
            ty::REMAINDER_CHUNK => {
                let offset = Self::advance(&mut self.remainder_offset, result.length, "remainder")?;
                (
                    RecipeKind::Slice,
                    vec![offset],
                    vec![self.remainder.clone()],
                )
            }
            ty::INLINE_ASSET => {
                let offset = Self::advance(&mut self.inline_offset, result.length, "inline asset")?;
                (
                    RecipeKind::Slice,
                    vec![offset],
                    vec![self.inline_assets.clone()],
                )
            }
            ty::COPY_SOURCE => {
                if self.source.length == 0 {
                    return Err(std_exception(
                        "legacy copy_source recipe in a delta without a source",
                    ));
                }
                if n == 0 {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "copy_source",
                        n,
                        i,
                    ));
                }
                (
                    RecipeKind::Slice,
                    vec![numbers[0]],
                    vec![self.source.clone()],
                )
            }
            ty::ZSTD_DELTA | ty::ZSTD_DECOMPRESSION => {
                // The standard zstd_decompression rule: a frame, optionally a prefix.
                if !(1..=2).contains(&i) {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "zstd",
                        n,
                        i,
                    ));
                }
                (RecipeKind::ZstdDecompression, Vec::new(), items)
            }
            ty::INLINE_ASSET_COPY => {
                if n != 1 {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "inline_asset_copy",
                        n,
                        i,
                    ));
                }
                (RecipeKind::Slice, numbers, vec![self.inline_assets.clone()])
            }
            ty::ZSTD_COMPRESSION => {
                return Err(Error::new(
                    code::RECIPE_ZSTD_COMPRESSION_NOT_SUPPORTED,
                    "zstd_compression_recipe::zstd_compression_recipe(): \
                     zstd_compression_recipe is no longer supported",
                ))
            }
            ty::ALL_ZERO => (RecipeKind::AllZeros, numbers, items),
            ty::GZ_DECOMPRESSION => {
                if i != 1 {
                    return Err(bad_count(
                        code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                        "gz_decompression",
                        n,
                        i,
                    ));
                }
                (RecipeKind::ZlibDecompression, vec![1], items)
            }
            other => return Err(std_exception(format!("unknown legacy recipe type {other}"))),
        };
        add_recipe(
            &mut self.recipes,
            Recipe {
                kind,
                result: result.clone(),
                numbers,
                items,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn hashed(data: &[u8]) -> Item {
        Item::with_sha256(data.len() as u64, sha(data))
    }

    fn from_hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Minimal writer of legacy files, for building test inputs in either byte order.
    struct Writer {
        endian: Endian,
        buf: Vec<u8>,
    }

    impl Writer {
        fn new(endian: Endian) -> Self {
            Writer {
                endian,
                buf: b"PAMZ".to_vec(),
            }
        }
        fn u8(&mut self, v: u8) -> &mut Self {
            self.buf.push(v);
            self
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            let b = match self.endian {
                Endian::Big => v.to_be_bytes(),
                Endian::Little => v.to_le_bytes(),
            };
            self.buf.extend_from_slice(&b);
            self
        }
        fn u64(&mut self, v: u64) -> &mut Self {
            let b = match self.endian {
                Endian::Big => v.to_be_bytes(),
                Endian::Little => v.to_le_bytes(),
            };
            self.buf.extend_from_slice(&b);
            self
        }
        fn raw(&mut self, b: &[u8]) -> &mut Self {
            self.buf.extend_from_slice(b);
            self
        }
        /// `u64 length` + SHA-256 of `data`.
        fn item(&mut self, data: &[u8]) -> &mut Self {
            self.u64(data.len() as u64)
                .u32(HASH_ALG_SHA256)
                .raw(&sha(data))
        }
        /// Version, target and source (source hash omitted when empty).
        fn header(&mut self, target: &[u8], source: &[u8]) -> &mut Self {
            self.u64(0).item(target);
            if source.is_empty() {
                self.u64(0)
            } else {
                self.item(source)
            }
        }
        fn recipe(&mut self, ty: u8, params: u8) -> &mut Self {
            self.u8(ty).u8(params)
        }
        fn num(&mut self, v: u64) -> &mut Self {
            self.u8(PARAM_NUMBER).u64(v)
        }
        /// Archive-item parameter of type blob; a recipe must follow when `has_recipe`.
        fn item_param(&mut self, data: &[u8], has_recipe: bool) -> &mut Self {
            self.u8(PARAM_ARCHIVE_ITEM)
                .u8(0)
                .item(data)
                .u8(u8::from(has_recipe))
        }
        /// Inline assets and remainder sizes/bytes.
        fn tail(&mut self, inline: &[u8], uncompressed: u64, compressed: &[u8]) -> Vec<u8> {
            self.u64(inline.len() as u64)
                .raw(inline)
                .u64(uncompressed)
                .u64(compressed.len() as u64)
                .raw(compressed);
            self.buf.clone()
        }
    }

    const WORKED_EXAMPLE: &str = "
        5041 4d5a 0000 0000 0000 0000 0000 0000
        0000 0005 0000 800c 2cf2 4dba 5fb0 a30e
        26e8 3b2a c5b9 e29e 1b16 1e5c 1fa7 425e
        7304 3362 938b 9824 0000 0000 0000 000c
        0000 800c a948 904f 2f0f 479b 8f81 9769
        4b30 184b 0d2e d1c1 cd2a 1ec0 fb85 d299
        a192 a447 0000 0000 0000 0002 0000 0000
        0000 0003 0000 800c d6a8 1f22 4bbf 2f7c
        22ba ddbd 5d40 730e b20c fb0b 3d74 e10c
        ab61 7882 14ca ceb1 0701 0100 0000 0000
        0000 0000 0000 0000 0000 0200 0080 0c92
        94ab 3803 9f60 d2ec 5382 2fb4 6b52 c663
        af7e a478 f4d1 7bf4 3da4 4ede 5e16 6c06
        0000 0000 0000 0000 026c 6f00 0000 0000
        0000 0000 0000 0000 0000 0203 00";

    /// The worked example of `docs/FORMAT.md` §4.4, built with the test writer.
    fn worked_example(endian: Endian) -> Vec<u8> {
        let mut w = Writer::new(endian);
        w.header(b"hello", b"hello world\n").u64(2);
        w.item(b"hel").recipe(ty::COPY_SOURCE as u8, 1).num(0);
        w.item(b"lo").recipe(ty::INLINE_ASSET as u8, 0);
        w.tail(b"lo", 0, &[0x03, 0x00])
    }

    fn parse_vec(bytes: Vec<u8>) -> Result<Delta> {
        parse_legacy(SharedBytes::from_vec(bytes))
    }

    fn err_code(bytes: Vec<u8>) -> u32 {
        parse_vec(bytes).expect_err("must fail").code
    }

    fn check_worked_example(delta: &Delta) {
        let hel = hashed(b"hel");
        let lo = hashed(b"lo");
        let source = hashed(b"hello world\n");
        let inline = Item::internal(2, 2);
        assert_eq!(delta.target, hashed(b"hello"));
        assert_eq!(delta.source, source);
        assert_eq!(
            delta.recipes,
            vec![
                Recipe {
                    kind: RecipeKind::Slice,
                    result: hel.clone(),
                    numbers: vec![0],
                    items: vec![source],
                },
                Recipe {
                    kind: RecipeKind::Slice,
                    result: lo.clone(),
                    numbers: vec![0],
                    items: vec![inline.clone()],
                },
                Recipe {
                    kind: RecipeKind::Chain,
                    result: hashed(b"hello"),
                    numbers: vec![],
                    items: vec![hel, lo],
                },
            ]
        );
        assert_eq!(delta.blobs.len(), 3);
        let (diff, ia, rc) = (&delta.blobs[0], &delta.blobs[1], &delta.blobs[2]);
        assert_eq!(diff.item, Item::internal(237, DIFF_INTERNAL_ID));
        assert_eq!((diff.offset, diff.bytes.len()), (0, 237));
        assert_eq!(ia.item, inline);
        assert_eq!((ia.offset, &*ia.bytes), (217, &b"lo"[..]));
        assert_eq!(rc.item, Item::internal(2, 3));
        assert_eq!((rc.offset, &*rc.bytes), (235, &[3u8, 0][..]));
        assert!(delta.legacy_nested.is_empty());
        assert_eq!(delta.nested_archives, 0);
    }

    #[test]
    fn worked_example_big_endian() {
        let bytes = from_hex(WORKED_EXAMPLE);
        assert_eq!(bytes.len(), 237);
        assert_eq!(
            bytes,
            worked_example(Endian::Big),
            "writer matches the spec"
        );
        let delta = parse_vec(bytes).unwrap();
        assert_eq!(delta.format, Format::LegacyBigEndian);
        check_worked_example(&delta);
    }

    #[test]
    fn worked_example_little_endian() {
        let bytes = worked_example(Endian::Little);
        assert_eq!(bytes.len(), 237);
        assert_eq!(&bytes[20..24], &[0x0C, 0x80, 0, 0]);
        let delta = parse_vec(bytes).unwrap();
        assert_eq!(delta.format, Format::LegacyLittleEndian);
        check_worked_example(&delta);
    }

    #[test]
    fn md5_items_are_kept_and_detected() {
        for endian in [Endian::Big, Endian::Little] {
            let mut w = Writer::new(endian);
            w.u64(0)
                .u64(3)
                .u32(HASH_ALG_MD5)
                .raw(&[7; 16])
                .u64(0)
                .u64(1);
            w.u64(3)
                .u32(HASH_ALG_MD5)
                .raw(&[9; 16])
                .recipe(ty::ALL_ZERO as u8, 1)
                .num(3);
            let delta = parse_vec(w.tail(b"", 0, b"")).unwrap();
            assert_eq!(delta.target.md5, Some([7; 16]));
            assert_eq!(delta.target.sha256, None);
            assert_eq!(delta.recipes.len(), 2);
            assert_eq!(delta.recipes[0].kind, RecipeKind::AllZeros);
            assert_eq!(delta.recipes[0].result.md5, Some([9; 16]));
            assert_eq!(delta.blobs.len(), 1, "only `diff`: empty blobs are omitted");
        }
    }

    /// Checks recipe kinds and that every slice of an internal blob stays inside it.
    fn check_vector(name: &str, format: Format) -> Delta {
        let path = format!(
            "{}/../../tests/vectors/{name}/delta",
            env!("CARGO_MANIFEST_DIR")
        );
        let delta = parse_vec(std::fs::read(path).unwrap()).unwrap();
        assert_eq!(delta.format, format);
        for recipe in &delta.recipes {
            assert!(!recipe.items.iter().any(|i| i.same_as(&recipe.result)));
            if recipe.kind == RecipeKind::Slice {
                let whole = &recipe.items[0];
                let end = recipe.numbers[0] + recipe.result.length;
                assert!(
                    end <= whole.length,
                    "{name}: slice ends at {end} past {whole:?}"
                );
            }
        }
        delta
    }

    #[test]
    fn vector_basic_recipes() {
        let delta = check_vector("legacy_v0_basic_recipes", Format::LegacyBigEndian);
        assert_eq!(delta.target.length, 47554);
        assert_eq!(delta.source.length, 307200);
        let chain = delta.recipes.last().unwrap();
        assert_eq!(chain.kind, RecipeKind::Chain);
        assert_eq!(chain.result, delta.target);
        assert_eq!(chain.items.len(), 9);
        // (kind, numbers, what the first item is): S = header source, I = inline assets,
        // R = remainder.uncompressed, C = remainder.compressed, H = another hashed item.
        let source = delta.source.clone();
        let describe = |r: &Recipe| {
            let first = r.items.first().map(|i| match i.internal {
                Some(2) => 'I',
                Some(3) => 'C',
                Some(4) => 'R',
                _ if *i == source => 'S',
                _ => 'H',
            });
            (r.kind, r.numbers.clone(), first)
        };
        use RecipeKind::*;
        let expected = vec![
            (Slice, vec![1000], Some('S')),   // copy_source
            (Slice, vec![0], Some('R')),      // remainder #1
            (Slice, vec![0], Some('I')),      // inline_asset #1
            (AllZeros, vec![], None),         // all_zero
            (Slice, vec![50000], Some('S')),  // region / copy_source
            (Slice, vec![333], Some('R')),    // remainder #2 at the running offset
            (Slice, vec![1500], Some('I')),   // inline_asset #2 at the running offset
            (Slice, vec![100], Some('I')),    // inline_asset_copy (explicit offset)
            (Slice, vec![0], Some('S')),      // nested in the concatenation
            (Slice, vec![100000], Some('S')), // nested in the concatenation
            (Chain, vec![], Some('H')),       // concatenation
            (ZlibDecompression, vec![0], Some('C')),
            (Chain, vec![], Some('H')), // the chunk table
        ];
        assert_eq!(
            delta.recipes.iter().map(describe).collect::<Vec<_>>(),
            expected
        );
        // The running offsets consume both blobs exactly.
        assert_eq!(delta.recipes[6].items[0].length, 1500 + 999);
        assert_eq!(delta.recipes[5].items[0].length, 333 + 2222);
        assert_eq!(delta.recipes[11].result, Item::internal(2555, 4));
        let ids: Vec<u32> = delta
            .blobs
            .iter()
            .map(|b| b.item.internal.unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn vector_little_endian_1x_layout() {
        let delta = check_vector(
            "legacy_v0_little_endian_1x_layout",
            Format::LegacyLittleEndian,
        );
        assert_eq!(delta.target.length, 28833);
        assert_eq!(delta.source.length, 307200);
        use RecipeKind::*;
        let summary: Vec<_> = delta
            .recipes
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.numbers.clone(),
                    r.items.first().map(|i| i.internal),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Slice, vec![1000], Some(None)), // copy_source
                (Slice, vec![0], Some(Some(4))), // remainder
                (Slice, vec![0], Some(Some(2))), // inline_asset
                (AllZeros, vec![], None),
                (ZlibDecompression, vec![0], Some(Some(3))),
                (Chain, vec![], Some(None)),
            ]
        );
        assert_eq!(delta.recipes[0].items[0], delta.source);
        assert_eq!(delta.recipes[1].items[0], Item::internal(333, 4));
        assert_eq!(delta.recipes[2].items[0], Item::internal(1500, 2));
        assert_eq!(delta.recipes[5].items.len(), 4);
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        for endian in [Endian::Big, Endian::Little] {
            let full = worked_example(endian);
            for len in 0..full.len() {
                let code = err_code(full[..len].to_vec());
                assert!(
                    code == code::IO_READER_READ_FAILURE
                        || code == code::DIFF_READ_DIFF_SIZE_MISMATCH,
                    "{endian:?} truncated to {len}: code {code}"
                );
            }
        }
        // Inside the remainder blob the size check reports the mismatch.
        let full = worked_example(Endian::Big);
        assert_eq!(
            err_code(full[..236].to_vec()),
            code::DIFF_READ_DIFF_SIZE_MISMATCH
        );
        assert_eq!(err_code(full[..10].to_vec()), code::IO_READER_READ_FAILURE);
    }

    #[test]
    fn trailing_byte_is_a_size_mismatch() {
        let mut bytes = worked_example(Endian::Little);
        bytes.push(0);
        let err = parse_vec(bytes).unwrap_err();
        assert_eq!(err.code, code::DIFF_READ_DIFF_SIZE_MISMATCH);
        assert!(err.message.contains("238-byte delta"), "{}", err.message);
    }

    #[test]
    fn header_errors() {
        let mut bytes = worked_example(Endian::Big);
        bytes[3] = b'X';
        let err = parse_vec(bytes).unwrap_err();
        assert_eq!(err.code, code::DIFF_MAGIC_HEADER_WRONG);
        assert_eq!(
            err.message,
            "Not a valid diff file - invalid magic. Found: PAMX"
        );

        let mut bytes = worked_example(Endian::Big);
        bytes[11] = 3;
        let err = parse_vec(bytes).unwrap_err();
        assert_eq!(err.code, code::DIFF_VERSION_WRONG);
        assert_eq!(err.message, "Not a valid version. Expected: 0, Found: 3");

        let mut bytes = worked_example(Endian::Big);
        bytes[22] = 0x80;
        bytes[23] = 0x0D;
        let err = parse_vec(bytes).unwrap_err();
        assert_eq!(err.code, code::DIFF_BAD_HASH_TYPE);
        assert_eq!(
            err.message,
            "diffs::hash::get_byte_count_for_algorithm(): Unexpected hash type: 32781"
        );
    }

    #[test]
    fn bad_hash_id_inside_the_chunk_table() {
        let mut bytes = worked_example(Endian::Big);
        // The first chunk's hash id follows its length at 0x70.
        assert_eq!(&bytes[0x74..0x78], &[0, 0, 0x80, 0x0C]);
        bytes[0x77] = 0x01;
        assert_eq!(err_code(bytes), code::DIFF_BAD_HASH_TYPE);
    }

    /// A delta with target `target`, source `source`, one chunk `chunk` whose recipe is written
    /// by `recipe`, and the given tail.
    fn one_chunk(
        endian: Endian,
        target: &[u8],
        source: &[u8],
        chunk: &[u8],
        recipe: impl FnOnce(&mut Writer),
        inline: &[u8],
    ) -> Vec<u8> {
        let mut w = Writer::new(endian);
        w.header(target, source).u64(1).item(chunk);
        recipe(&mut w);
        w.tail(inline, 0, b"")
    }

    fn one_chunk_code(recipe: impl FnOnce(&mut Writer)) -> u32 {
        err_code(one_chunk(
            Endian::Big,
            b"abcd",
            b"source",
            b"abcd",
            recipe,
            b"abcd",
        ))
    }

    #[test]
    fn recipe_errors() {
        assert_eq!(
            one_chunk_code(|w| {
                w.recipe(ty::REGION as u8, 1).u8(2).u64(0);
            }),
            code::DIFF_RECIPE_PARAMETER_READ_INVALID_TYPE
        );
        assert_eq!(
            one_chunk_code(|w| {
                w.recipe(14, 0);
            }),
            code::STANDARD_LIBRARY_EXCEPTION
        );
        assert_eq!(
            one_chunk_code(|w| {
                w.u8(RECIPE_TYPE_ESCAPE).u32(1000).u8(0);
            }),
            code::STANDARD_LIBRARY_EXCEPTION
        );
        let err = parse_vec(one_chunk(
            Endian::Big,
            b"abcd",
            b"",
            b"abcd",
            |w| {
                w.recipe(ty::ZSTD_COMPRESSION as u8, 4)
                    .item_param(b"data", false)
                    .num(1)
                    .num(4)
                    .num(3);
            },
            b"",
        ))
        .unwrap_err();
        assert_eq!(err.code, code::RECIPE_ZSTD_COMPRESSION_NOT_SUPPORTED);
        assert!(err
            .message
            .contains("zstd_compression_recipe is no longer supported"));
    }

    #[test]
    fn parameter_count_errors() {
        use code::{
            DIFF_RECIPE_INVALID_PARAMETER_COUNT as COUNT, STANDARD_LIBRARY_EXCEPTION as ONE,
        };
        /// A recipe parameter: a number, or an archive item (without recipe) of these bytes.
        enum P {
            N(u64),
            I(&'static [u8]),
        }
        use P::{I, N};
        let cases: [(u32, u8, &[P]); 11] = [
            (ONE, ty::REGION as u8, &[I(b"x"), N(0)]),
            (COUNT, ty::REGION as u8, &[N(0), N(4)]),
            (COUNT, ty::BSDIFF as u8, &[I(b"x")]),
            (ONE, ty::NESTED_DIFF as u8, &[I(b"x")]),
            (ONE, ty::NESTED_DIFF as u8, &[I(b"x"), I(b"y"), I(b"z")]),
            (COUNT, ty::COPY_SOURCE as u8, &[]),
            (COUNT, ty::ZSTD_DELTA as u8, &[]),
            (COUNT, ty::INLINE_ASSET_COPY as u8, &[]),
            (COUNT, ty::INLINE_ASSET_COPY as u8, &[N(0), N(0)]),
            (
                COUNT,
                ty::ZSTD_DECOMPRESSION as u8,
                &[I(b"x"), I(b"y"), I(b"z")],
            ),
            (COUNT, ty::GZ_DECOMPRESSION as u8, &[I(b"x"), I(b"y")]),
        ];
        for (i, (expected, recipe_type, params)) in cases.into_iter().enumerate() {
            let code = one_chunk_code(|w| {
                w.recipe(recipe_type, params.len() as u8);
                for p in params {
                    match p {
                        N(v) => w.num(*v),
                        I(data) => w.item_param(data, false),
                    };
                }
            });
            assert_eq!(code, expected, "case {i}");
        }
        // copy_source without a header source.
        let bytes = one_chunk(
            Endian::Big,
            b"abcd",
            b"",
            b"abcd",
            |w| {
                w.recipe(7, 1).num(0);
            },
            b"",
        );
        assert_eq!(err_code(bytes), code::STANDARD_LIBRARY_EXCEPTION);
    }

    #[test]
    fn self_referential_recipe_is_rejected() {
        // A region of the chunk itself.
        let code = one_chunk_code(|w| {
            w.recipe(ty::REGION as u8, 3)
                .item_param(b"abcd", false)
                .num(0)
                .num(4);
        });
        assert_eq!(code, code::RECIPE_SELF_REFERENTIAL);
    }

    #[test]
    fn single_chunk_equal_to_target_needs_no_chain() {
        let bytes = one_chunk(
            Endian::Big,
            b"abcd",
            b"",
            b"abcd",
            |w| {
                w.recipe(ty::INLINE_ASSET as u8, 0);
            },
            b"abcd",
        );
        let delta = parse_vec(bytes).unwrap();
        assert_eq!(
            delta.recipes,
            vec![Recipe {
                kind: RecipeKind::Slice,
                result: hashed(b"abcd"),
                numbers: vec![0],
                items: vec![Item::internal(4, 2)],
            }]
        );
        // A single chunk that differs from the target still gets its chain.
        let bytes = one_chunk(
            Endian::Big,
            b"abcd",
            b"",
            b"abce",
            |w| {
                w.recipe(ty::INLINE_ASSET as u8, 0);
            },
            b"abce",
        );
        let delta = parse_vec(bytes).unwrap();
        assert_eq!(delta.recipes.last().unwrap().kind, RecipeKind::Chain);
    }

    #[test]
    fn zero_length_results_and_copies_are_dropped() {
        let mut w = Writer::new(Endian::Big);
        w.header(b"ab", b"").u64(3);
        w.item(b"").recipe(ty::INLINE_ASSET as u8, 0);
        w.item(b"a")
            .recipe(ty::COPY as u8, 1)
            .item_param(b"a", false);
        w.item(b"b").recipe(ty::INLINE_ASSET as u8, 0);
        let delta = parse_vec(w.tail(b"b", 0, b"")).unwrap();
        assert_eq!(delta.recipes.len(), 2, "{:?}", delta.recipes);
        assert_eq!(delta.recipes[0].numbers, vec![0]);
        assert_eq!(delta.recipes[1].kind, RecipeKind::Chain);
        assert_eq!(delta.recipes[1].items.len(), 3);
    }

    #[test]
    fn zero_chunks_leave_the_target_unproduced() {
        let mut w = Writer::new(Endian::Big);
        w.header(b"abc", b"").u64(0);
        let delta = parse_vec(w.tail(b"", 0, b"")).unwrap();
        assert_eq!(delta.recipes.len(), 1);
        assert!(delta.recipes[0].items.is_empty());
        // An empty target: no recipe at all.
        let mut w = Writer::new(Endian::Little);
        w.header(b"", b"").u64(0);
        let delta = parse_vec(w.tail(b"", 0, b"")).unwrap();
        assert_eq!(delta.target.length, 0);
        assert!(
            delta.target.sha256.is_some(),
            "the target hash is always present"
        );
        assert!(delta.recipes.is_empty());
    }

    #[test]
    fn running_offsets_follow_stream_order_depth_first() {
        // Chunk 0 = concatenation(inline "ab", remainder "XY"); chunk 1 = remainder "Z",
        // chunk 2 = inline "c"; inline blob and uncompressed remainder have the same length,
        // yet stay distinct items.
        let mut w = Writer::new(Endian::Little);
        w.header(b"abXYZc", b"").u64(3);
        w.item(b"abXY").recipe(ty::CONCATENATION as u8, 2);
        w.item_param(b"ab", true).recipe(ty::INLINE_ASSET as u8, 0);
        w.item_param(b"XY", true)
            .recipe(ty::REMAINDER_CHUNK as u8, 0);
        w.item(b"Z").recipe(ty::REMAINDER_CHUNK as u8, 0);
        w.item(b"c").recipe(ty::INLINE_ASSET as u8, 0);
        let deflated = [0x8b, 0x88, 0x8c, 0x02, 0x00]; // raw deflate of "XYZ"
        let delta = parse_vec(w.tail(b"abc", 3, &deflated)).unwrap();
        let inline = Item::internal(3, 2);
        let rem = Item::internal(3, 4);
        let slice = |data: &[u8], offset: u64, whole: &Item| Recipe {
            kind: RecipeKind::Slice,
            result: hashed(data),
            numbers: vec![offset],
            items: vec![whole.clone()],
        };
        assert_eq!(
            delta.recipes,
            vec![
                slice(b"ab", 0, &inline),
                slice(b"XY", 0, &rem),
                Recipe {
                    kind: RecipeKind::Chain,
                    result: hashed(b"abXY"),
                    numbers: vec![],
                    items: vec![hashed(b"ab"), hashed(b"XY")],
                },
                slice(b"Z", 2, &rem),
                slice(b"c", 2, &inline),
                Recipe {
                    kind: RecipeKind::ZlibDecompression,
                    result: rem.clone(),
                    numbers: vec![0],
                    items: vec![Item::internal(5, 3)],
                },
                Recipe {
                    kind: RecipeKind::Chain,
                    result: hashed(b"abXYZc"),
                    numbers: vec![],
                    items: vec![hashed(b"abXY"), hashed(b"Z"), hashed(b"c")],
                },
            ]
        );
        assert!(!inline.same_as(&rem));
        assert_eq!(&*delta.blobs[2].bytes, &deflated[..]);
    }

    #[test]
    fn other_recipes_translate() {
        let mut w = Writer::new(Endian::Big);
        w.header(b"0123456", b"src").u64(7);
        w.item(b"0")
            .recipe(ty::BSDIFF as u8, 2)
            .item_param(b"patch", false)
            .item_param(b"old", false);
        w.item(b"1")
            .recipe(ty::NESTED_DIFF as u8, 2)
            .item_param(b"nested", false)
            .item_param(b"basis", false);
        w.item(b"2")
            .recipe(ty::ZSTD_DELTA as u8, 2)
            .item_param(b"frame", false)
            .item_param(b"prefix", false);
        w.item(b"3")
            .recipe(ty::ZSTD_DECOMPRESSION as u8, 1)
            .item_param(b"frame", false);
        w.item(b"4")
            .recipe(ty::GZ_DECOMPRESSION as u8, 1)
            .item_param(b"gz", false);
        w.item(b"5").recipe(ty::INLINE_ASSET_COPY as u8, 1).num(1);
        w.item(b"6").recipe(ty::COPY_SOURCE as u8, 1).num(2);
        let delta = parse_vec(w.tail(b"x5", 0, b"")).unwrap();
        let summary: Vec<_> = delta
            .recipes
            .iter()
            .map(|r| (r.kind, r.numbers.clone(), r.items.clone()))
            .collect();
        use RecipeKind::*;
        assert_eq!(
            summary[..6],
            [
                (
                    BspatchDecompression,
                    vec![],
                    vec![hashed(b"patch"), hashed(b"old")]
                ),
                (
                    ZstdDecompression,
                    vec![],
                    vec![hashed(b"frame"), hashed(b"prefix")]
                ),
                (ZstdDecompression, vec![], vec![hashed(b"frame")]),
                (ZlibDecompression, vec![1], vec![hashed(b"gz")]),
                (Slice, vec![1], vec![Item::internal(2, 2)]),
                (Slice, vec![2], vec![hashed(b"src")]),
            ]
        );
        assert_eq!(summary[6].0, Chain);
        assert_eq!(
            delta.legacy_nested,
            vec![LegacyNestedDelta {
                result: hashed(b"1"),
                delta_blob: hashed(b"nested"),
                basis: hashed(b"basis"),
            }]
        );
    }

    #[test]
    fn chunk_archive_items_carry_an_ignored_offset() {
        let mut w = Writer::new(Endian::Big);
        w.header(b"ab", b"")
            .u64(1)
            .item(b"ab")
            .recipe(ty::REGION as u8, 3);
        w.u8(PARAM_ARCHIVE_ITEM)
            .u8(ARCHIVE_ITEM_CHUNK)
            .u64(77)
            .item(b"xaby")
            .u8(0);
        w.num(1).num(2);
        let delta = parse_vec(w.tail(b"", 0, b"")).unwrap();
        assert_eq!(delta.recipes[0].items, vec![hashed(b"xaby")]);
        assert_eq!(delta.recipes[0].numbers, vec![1]);
    }

    #[test]
    fn nested_deltas_continue_the_id_counter() {
        let bytes = worked_example(Endian::Little);
        let mut next = FIRST_NESTED_INTERNAL_ID;
        let delta = parse_legacy_nested(SharedBytes::from_vec(bytes), &mut next).unwrap();
        assert_eq!(next, FIRST_NESTED_INTERNAL_ID + 3);
        let ids: Vec<_> = delta
            .blobs
            .iter()
            .map(|b| (b.item.clone(), b.offset))
            .collect();
        assert_eq!(
            ids,
            vec![(Item::internal(2, 5), 0), (Item::internal(2, 6), 0)]
        );
        assert_eq!(delta.recipes[1].items, vec![Item::internal(2, 5)]);
        // A second nested delta gets fresh ids.
        let again = parse_legacy_nested(
            SharedBytes::from_vec(worked_example(Endian::Big)),
            &mut next,
        )
        .unwrap();
        assert_eq!(again.blobs[0].item, Item::internal(2, 8));
    }

    #[test]
    fn deep_recipe_nesting_is_bounded() {
        // `levels` recipes nested inside one another (concatenations around an all_zero).
        let nested = |levels: u32| {
            let mut w = Writer::new(Endian::Big);
            w.header(b"a", b"").u64(1).item(b"a");
            for level in 1..levels {
                w.recipe(ty::CONCATENATION as u8, 1)
                    .item_param(format!("{level}").as_bytes(), true);
            }
            w.recipe(ty::ALL_ZERO as u8, 0);
            w.tail(b"", 0, b"")
        };
        // At the limit: fine (the single chunk is the target, so no extra chain).
        let delta = parse_vec(nested(MAX_RECIPE_DEPTH)).unwrap();
        assert_eq!(delta.recipes.len(), MAX_RECIPE_DEPTH as usize);
        assert_eq!(delta.recipes[0].kind, RecipeKind::AllZeros);
        // One more level, or a hostile 100 000 levels: an error, not a stack overflow.
        for levels in [MAX_RECIPE_DEPTH + 1, 100_000] {
            let err = parse_vec(nested(levels)).unwrap_err();
            assert_eq!(err.code, code::STANDARD_LIBRARY_EXCEPTION);
            assert!(err.text().contains("nested deeper"), "{}", err.text());
        }
    }

    #[test]
    fn huge_counts_and_sizes_fail_fast() {
        let start = std::time::Instant::now();
        let mut w = Writer::new(Endian::Big);
        w.header(b"a", b"")
            .u64(u64::MAX)
            .item(b"a")
            .recipe(ty::ALL_ZERO as u8, 0);
        assert_eq!(err_code(w.buf.clone()), code::IO_READER_READ_FAILURE);
        // A huge inline-asset size.
        let mut w = Writer::new(Endian::Big);
        w.header(b"a", b"").u64(0).u64(u64::MAX).raw(&[0; 40]);
        assert_eq!(err_code(w.buf.clone()), code::IO_READER_READ_FAILURE);
        // A huge remainder size.
        let mut w = Writer::new(Endian::Big);
        w.header(b"a", b"")
            .u64(0)
            .u64(0)
            .u64(u64::MAX)
            .u64(u64::MAX);
        assert_eq!(err_code(w.buf.clone()), code::DIFF_READ_DIFF_SIZE_MISMATCH);
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn running_offset_overflow_is_an_error() {
        let mut w = Writer::new(Endian::Big);
        w.header(b"a", b"").u64(2);
        w.u64(u64::MAX)
            .u32(HASH_ALG_SHA256)
            .raw(&[1; 32])
            .recipe(ty::INLINE_ASSET as u8, 0);
        w.u64(2)
            .u32(HASH_ALG_SHA256)
            .raw(&[2; 32])
            .recipe(ty::INLINE_ASSET as u8, 0);
        w.u64(3)
            .u32(HASH_ALG_SHA256)
            .raw(&[3; 32])
            .recipe(ty::INLINE_ASSET as u8, 0);
        let err = parse_vec(w.tail(b"", 0, b"")).unwrap_err();
        assert_eq!(err.code, code::STANDARD_LIBRARY_EXCEPTION);
        assert!(err.text().contains("overflow"));
    }

    /// An outer legacy delta whose first chunk comes from an embedded legacy delta (the worked
    /// example, carried as an inline asset) applied to the outer source.
    fn outer_with_nested(endian: Endian, inner: &[u8]) -> Vec<u8> {
        let mut inline = inner.to_vec();
        inline.extend_from_slice(b"!!");
        let mut w = Writer::new(endian);
        w.header(b"hello!!", b"hello world\n").u64(2);
        w.item(b"hello").recipe(ty::NESTED_DIFF as u8, 2);
        w.item_param(inner, true).recipe(ty::INLINE_ASSET as u8, 0);
        w.item_param(b"hello world\n", false);
        w.item(b"!!").recipe(ty::INLINE_ASSET as u8, 0);
        w.tail(&inline, 0, &[0x03, 0x00])
    }

    #[test]
    fn nested_legacy_deltas_apply_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, b"hello world\n").unwrap();
        for (outer_endian, inner_endian) in [
            (Endian::Big, Endian::Big),
            (Endian::Little, Endian::Little),
            (Endian::Big, Endian::Little),
        ] {
            let delta = dir.path().join("delta");
            let target = dir.path().join("target");
            let bytes = outer_with_nested(outer_endian, &worked_example(inner_endian));
            let parsed = parse_vec(bytes.clone()).unwrap();
            assert_eq!(parsed.legacy_nested.len(), 1);
            std::fs::write(&delta, &bytes).unwrap();
            crate::apply::apply_files(&source, &delta, &target).unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"hello!!");
        }
        // An embedded blob that is not a legacy delta: code 1, nothing written.
        let delta = dir.path().join("bad");
        let target = dir.path().join("bad-target");
        let mut not_legacy = worked_example(Endian::Big);
        not_legacy[11] = 2;
        std::fs::write(&delta, outer_with_nested(Endian::Big, &not_legacy)).unwrap();
        let err = crate::apply::apply_files(&source, &delta, &target).unwrap_err();
        assert_eq!(err.code, code::STANDARD_LIBRARY_EXCEPTION, "{err}");
        assert!(!target.exists());
    }
}
