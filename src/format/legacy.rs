//! Reader for legacy PAMZ deltas (version 0, written by the 1.x toolchain).
//!
//! Layout: `pamz-format.md` §6; recipe translation: `recipes.md` §9. Both byte orders are
//! accepted (`pamz-format.md` §1.2 recommendation): the order is detected from the target hash
//! algorithm id at offset 20. Legacy recipes are translated into standard [`Recipe`]s while
//! reading; `nested_diff_recipe`s are recorded as [`LegacyNestedDelta`]s for the planner, which
//! resolves the embedded delta blob and parses it with [`parse_legacy_nested`].
//!
//! The legacy internal items (`diff`, `inline_assets`, `remainder.compressed`,
//! `remainder.uncompressed`) carry no hash; they are [`Item::internal`] items bound by a numeric id
//! that is unique across the top-level delta and all of its nested deltas (this fixes upstream's
//! conflation of equal-length internal items, `pamz-format.md` §6.3).
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

/// Legacy recipe type ids (`pamz-format.md` §6.1).
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
    *next = next.checked_add(1).ok_or_else(|| {
        Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            "legacy delta: internal item ids exhausted",
        )
    })?;
    Ok(id)
}

/// The shared core of [`parse_legacy`] and [`parse_legacy_nested`].
fn parse(data: SharedBytes, next_internal_id: &mut u32, top_level: bool) -> Result<Delta> {
    let file_len = data.len() as u64;
    let mut cur = Cursor::new(data.clone(), Endian::Big);

    let magic = cur.bytes(4)?;
    if magic != b"PAMZ" {
        return Err(Error::new(
            code::DIFF_MAGIC_HEADER_WRONG,
            format!(
                "Not a valid diff file - invalid magic. Found: {}",
                String::from_utf8_lossy(magic)
            ),
        ));
    }
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
        recipes.push(recipe);
    }
    Ok(())
}

/// Error for a legacy recipe with the wrong number of ingredients.
fn bad_count(code: u32, what: &str, numbers: usize, items: usize) -> Error {
    Error::new(
        code,
        format!("legacy {what} recipe: unexpected parameters ({numbers} numbers, {items} items)"),
    )
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
        if depth >= MAX_RECIPE_DEPTH {
            return Err(Error::new(
                code::STANDARD_LIBRARY_EXCEPTION,
                format!("legacy delta: recipes nested deeper than {MAX_RECIPE_DEPTH} levels"),
            ));
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
            Error::new(
                code::STANDARD_LIBRARY_EXCEPTION,
                format!("legacy delta: running {what} offset overflows"),
            )
        })?;
        Ok(offset)
    }

    /// Converts one legacy recipe into its standard equivalent (`recipes.md` §9).
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
                    return Err(bad_count(code::DIFF_RECIPE_INVALID_PARAMETER_COUNT, "region", n, i));
                }
                (RecipeKind::Slice, vec![numbers[0]], items)
            }
            ty::CONCATENATION => (RecipeKind::Chain, numbers, items),
            ty::BSDIFF => {
                if i != 2 {
                    return Err(bad_count(code::DIFF_RECIPE_INVALID_PARAMETER_COUNT, "bsdiff", n, i));
                }
                (RecipeKind::BspatchDecompression, numbers, items)
            }
            ty::NESTED_DIFF => {
                if i != 2 {
                    return Err(bad_count(code::STANDARD_LIBRARY_EXCEPTION, "nested_diff", n, i));
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
                (RecipeKind::Slice, vec![offset], vec![self.remainder.clone()])
            }
            ty::INLINE_ASSET => {
                let offset =
                    Self::advance(&mut self.inline_offset, result.length, "inline asset")?;
                (RecipeKind::Slice, vec![offset], vec![self.inline_assets.clone()])
            }
            ty::COPY_SOURCE => {
                if self.source.length == 0 {
                    return Err(Error::new(
                        code::STANDARD_LIBRARY_EXCEPTION,
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
                (RecipeKind::Slice, vec![numbers[0]], vec![self.source.clone()])
            }
            ty::ZSTD_DELTA | ty::ZSTD_DECOMPRESSION => {
                // The standard zstd_decompression rule: a frame, optionally a prefix.
                if !(1..=2).contains(&i) {
                    return Err(bad_count(code::DIFF_RECIPE_INVALID_PARAMETER_COUNT, "zstd", n, i));
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
            other => {
                return Err(Error::new(
                    code::STANDARD_LIBRARY_EXCEPTION,
                    format!("Failed to apply diff. Exception: std::exception (unknown legacy recipe type {other})"),
                ))
            }
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
