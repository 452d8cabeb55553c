//! Reader for the standard format (version 2, and version 1 in network byte order).

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::format::model::{
    is_extended_version, Delta, DeltaBlob, Format, Item, Recipe, RecipeKind, EXTENDED_REVISION_2,
};
use crate::format::reader::{Cursor, Endian};
use crate::io::SharedBytes;

/// Deepest nesting of nested archives we follow (upstream has no limit; hostile input could
/// otherwise exhaust the stack).
pub const MAX_NESTING_DEPTH: usize = 16;

/// Most entries the recipe type table may have (upstream writes exactly 8).
pub const MAX_RECIPE_TYPE_NAMES: u32 = 1024;

/// Parses a standard-format delta (the caller has checked magic and version).
pub fn parse_standard(data: SharedBytes, format: Format) -> Result<Delta> {
    let mut delta = Delta {
        format,
        target: Item::empty(),
        source: Item::empty(),
        recipes: Vec::new(),
        blobs: Vec::new(),
        nested_archives: 0,
        legacy_nested: Vec::new(),
    };
    let (target, source) = parse_archive(data, 0, &mut delta, format)?;
    delta.target = target;
    delta.source = source;
    Ok(delta)
}

/// Reads a standard item: `u64 length`, then (if non-zero) one hash.
pub fn read_item(cur: &mut Cursor) -> Result<Item> {
    let mut item = Item {
        length: cur.u64()?,
        ..Item::default()
    };
    if item.length != 0 {
        cur.hash_into(&mut item)?;
    }
    Ok(item)
}

/// Parses one archive (top level or nested) into `delta`, returning its (target, source) items.
fn parse_archive(
    data: SharedBytes,
    depth: usize,
    delta: &mut Delta,
    format: Format,
) -> Result<(Item, Item)> {
    crate::stack::check("the nested archives")?;
    let top_level = depth == 0;
    let base_offset = 0;
    let mut cur = Cursor::new(data, Endian::Big);
    cur.magic()?;
    let version = cur.u64()?;
    let extended = is_extended_version(version) && format == Format::Extended;
    // An extended delta may nest standard v2 archives; a standard one nests only v2.
    let version_ok = version == 2 || (top_level && version == 1) || extended;
    if !version_ok {
        return Err(Error::new(
            code::DIFF_VERSION_WRONG,
            format!("Not a valid version. Expected: 2, Found: {version}"),
        ));
    }
    let target = read_item(&mut cur)?;
    let source = read_item(&mut cur)?;

    let type_count = cur.u32()?;
    if type_count > MAX_RECIPE_TYPE_NAMES {
        return Err(Error::new(
            code::DIFF_INVALID_RECIPE_TYPE,
            format!("Recipe type table has {type_count} entries (at most {MAX_RECIPE_TYPE_NAMES} accepted)"),
        ));
    }
    // Upstream ignores the names and interprets ids with its built-in table; so do we. In
    // the extended format the names of our own ids must be ours (a table written by another
    // tool or a later revision of ours is refused rather than misread).
    for index in 0..type_count {
        let len = cur.u64()?;
        let name = cur.bytes(len)?;
        if !extended || (index as usize) < RecipeKind::ALL.len() {
            continue;
        }
        let ours = RecipeKind::from_extended_id(index).map(RecipeKind::name);
        if ours.map(str::as_bytes) != Some(name) {
            return Err(Error::new(
                code::DIFF_INVALID_RECIPE_TYPE,
                format!(
                    "Extended delta: recipe type {index} is {:?}, this applier knows {}",
                    String::from_utf8_lossy(name),
                    ours.map_or("no such type".to_string(), |n| format!("{n:?}"))
                ),
            ));
        }
    }

    if extended && version == EXTENDED_REVISION_2 {
        let mut sets = Cursor::new(super::packed::unpack(&mut cur)?, Endian::Big);
        read_recipe_sets(&mut sets, delta, extended)?;
        if sets.remaining() != 0 {
            return Err(Error::new(
                code::EXT_COOKBOOK_MALFORMED,
                format!(
                    "Extended delta: {} bytes after the last packed recipe set",
                    sets.remaining()
                ),
            ));
        }
    } else {
        read_recipe_sets(&mut cur, delta, extended)?;
    }

    for name in ["inline_assets", "remainder.compressed"] {
        let item = read_item(&mut cur)?;
        if item.length == 0 {
            continue;
        }
        let offset = cur.position() + base_offset;
        let bytes = cur.blob(item.length)?;
        let digest: [u8; 32] = Sha256::digest(&bytes[..]).into();
        // Hashing touched every page of the blob; readers fault back in what they use.
        bytes.release(0, bytes.len() as u64);
        if item.sha256.is_some_and(|h| h != digest) {
            return Err(Error::unresolvable(format!(
                "{name} blob does not match its SHA-256 (corrupt delta)"
            )));
        }
        delta.blobs.push(DeltaBlob {
            item,
            offset,
            bytes,
        });
    }

    let nested_count = cur.u32()?;
    for index in 0..nested_count {
        let blob_item = read_item(&mut cur)?;
        let blob = cur.blob(blob_item.length)?;
        if depth + 1 > MAX_NESTING_DEPTH {
            return Err(Error::new(
                code::STANDARD_LIBRARY_EXCEPTION,
                format!("Nested archives deeper than {MAX_NESTING_DEPTH} levels are not accepted"),
            ));
        }
        delta.nested_archives += 1;
        parse_archive(blob, depth + 1, delta, format).map_err(|e| {
            e.with_context(format!("nested archive #{index} at depth {}", depth + 1))
        })?;
    }
    // Trailing bytes after the last nested archive are ignored, as upstream does.
    Ok((target, source))
}

/// Reads the recipe sets (`u64` set count, then each set) into `delta.recipes`.
fn read_recipe_sets(cur: &mut Cursor, delta: &mut Delta, extended: bool) -> Result<()> {
    let set_count = cur.u64()?;
    for _ in 0..set_count {
        let recipe_count = cur.u64()?;
        let result = read_item(cur)?;
        for _ in 0..recipe_count {
            let recipe = read_recipe(cur, &result, extended)?;
            if recipe.result.length != 0 {
                super::push_recipe(&mut delta.recipes, recipe)?;
            }
        }
    }
    Ok(())
}

fn read_recipe(cur: &mut Cursor, result: &Item, extended: bool) -> Result<Recipe> {
    let type_id = cur.u32()?;
    let kind = if extended {
        RecipeKind::from_extended_id(type_id)
    } else {
        RecipeKind::from_id(type_id)
    };
    let kind = kind.ok_or_else(|| {
        let last = if extended {
            RecipeKind::EXTENDED.len()
        } else {
            RecipeKind::ALL.len()
        } - 1;
        Error::new(
            code::DIFF_INVALID_RECIPE_TYPE,
            format!("Invalid recipe type id {type_id} (known ids are 0 to {last})"),
        )
    })?;
    let number_count = cur.u64()?;
    let mut numbers = Vec::with_capacity(bounded_capacity(number_count, cur.remaining(), 8));
    for _ in 0..number_count {
        numbers.push(cur.u64()?);
    }
    let item_count = cur.u64()?;
    let mut items = Vec::with_capacity(bounded_capacity(item_count, cur.remaining(), 8));
    for _ in 0..item_count {
        items.push(read_item(cur)?);
    }
    let recipe = Recipe {
        kind,
        result: result.clone(),
        numbers,
        items,
    };
    validate_recipe(&recipe)?;
    Ok(recipe)
}

/// Capacity for `count` records of at least `record_size` bytes when `remaining` bytes are left.
fn bounded_capacity(count: u64, remaining: u64, record_size: u64) -> usize {
    count.min(remaining / record_size).min(1 << 16) as usize
}

/// Load-time checks of upstream's recipe constructors (ingredient counts, self-reference,
/// unsupported types). Shared with the legacy reader.
pub fn validate_recipe(recipe: &Recipe) -> Result<()> {
    let (n, i) = (recipe.numbers.len(), recipe.items.len());
    let name = recipe.kind.name();
    let bad_count = |what: &str| {
        Error::new(
            code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
            format!("{name} recipe: invalid {what} count (numbers: {n}, items: {i})"),
        )
    };
    match recipe.kind {
        RecipeKind::AllZeros | RecipeKind::Chain => {}
        RecipeKind::Slice | RecipeKind::ZlibDecompression => {
            if n != 1 {
                return Err(bad_count("number ingredient"));
            }
            if i != 1 {
                return Err(bad_count("item ingredient"));
            }
        }
        RecipeKind::BspatchDecompression => {
            if i != 2 {
                return Err(bad_count("item ingredient"));
            }
        }
        RecipeKind::ZlibCompression => {
            if n != 2 {
                return Err(bad_count("number ingredient"));
            }
            if i != 1 {
                return Err(Error::unresolvable(
                    "zlib_compression recipe needs exactly one item ingredient",
                ));
            }
        }
        RecipeKind::ZstdCompression => {
            return Err(Error::new(
                code::RECIPE_ZSTD_COMPRESSION_NOT_SUPPORTED,
                "zstd_compression_recipe::zstd_compression_recipe(): zstd_compression_recipe is no longer supported",
            ))
        }
        RecipeKind::ZstdDecompression => {
            if i != 1 && i != 2 {
                return Err(bad_count("item ingredient"));
            }
        }
        RecipeKind::ZstdCompressionExact => {
            if n != crate::codec::zstd_compress::NUMBER_COUNT {
                return Err(bad_count("number ingredient"));
            }
            if i != 1 {
                return Err(bad_count("item ingredient"));
            }
        }
        RecipeKind::DeflateReconstruct | RecipeKind::ZstdReconstruct => {
            if n != 2 {
                return Err(bad_count("number ingredient"));
            }
            if i != 2 {
                return Err(bad_count("item ingredient"));
            }
        }
    }
    if recipe.items.iter().any(|item| item.same_as(&recipe.result)) {
        return Err(Error::new(
            code::RECIPE_SELF_REFERENTIAL,
            format!(
                "{name} recipe: result {} is one of its own ingredients",
                recipe.result.describe()
            ),
        ));
    }
    Ok(())
}
