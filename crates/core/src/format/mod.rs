//! PAMZ delta serialization: the model, the readers (standard v2, legacy v0) and the writer.

pub mod legacy;
pub mod model;
pub mod packed;
pub mod reader;
pub mod standard;
pub mod writer;

pub use model::*;

use crate::error::{code, Error, Result};
use crate::io::SharedBytes;

/// Appends a parsed recipe, failing cleanly (20301) when the list cannot grow: a delta of a
/// hundred megabytes of recipes can exhaust an address-space limit here, and a failed
/// allocation would abort the process.
pub(crate) fn push_recipe(recipes: &mut Vec<Recipe>, recipe: Recipe) -> Result<()> {
    if recipes.try_reserve(1).is_err() {
        return Err(Error::new(
            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
            format!(
                "Not enough memory: the delta's recipes need more than {} bytes",
                recipes.capacity() * std::mem::size_of::<Recipe>()
            ),
        ));
    }
    recipes.push(recipe);
    Ok(())
}

/// Detects the serialization of `data` and parses it (upstream's detection order,
/// `docs/FORMAT.md` §1, extended to read little-endian legacy files and big-endian standard v1).
pub fn parse_delta(data: SharedBytes) -> Result<Delta> {
    if data.len() < 4 {
        return Err(Error::short_read(4, data.len() as u64));
    }
    reader::check_magic(&data[..4])?;
    if data.len() < 12 {
        return Err(Error::short_read(8, data.len() as u64 - 4));
    }
    let version_bytes: [u8; 8] = data[4..12].try_into().expect("length checked");
    match u64::from_be_bytes(version_bytes) {
        2 => standard::parse_standard(data, Format::StandardV2),
        1 => standard::parse_standard(data, Format::StandardV1BigEndian),
        0 => legacy::parse_legacy(data),
        v if is_extended_version(v) => standard::parse_standard(data, Format::Extended),
        found => Err(Error::new(
            code::DIFF_VERSION_WRONG,
            format!("Not a valid version. Expected: 0, Found: {found}"),
        )),
    }
}
