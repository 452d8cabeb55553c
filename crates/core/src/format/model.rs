//! In-memory model of a PAMZ delta: items, recipes, and the blobs stored inside the delta file.
//!
//! Both serializations (standard v2 and legacy v0) are parsed into this one model; the planner
//! resolves the target from it and the writer serializes it back (standard v2 only).

use crate::io::SharedBytes;

/// On-disk hash algorithm id of MD5 (Windows `CALG_MD5`).
pub const HASH_ALG_MD5: u32 = 32771;
/// On-disk hash algorithm id of SHA-256 (Windows `CALG_SHA_256`).
pub const HASH_ALG_SHA256: u32 = 32780;

/// Identity of a byte string: its length plus hashes. Two items denote the same bytes when their
/// lengths are equal and they share a hash of the same algorithm (or the same internal id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Item {
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 digest, when known.
    pub sha256: Option<[u8; 32]>,
    /// MD5 digest, when known (legacy deltas only; never used for matching files).
    pub md5: Option<[u8; 16]>,
    /// Identity of an unhashed legacy internal item (inline assets, remainder, the delta itself).
    /// Such items are bound by this id, never by name or length (fixes upstream's conflation bug).
    pub internal: Option<u32>,
}

impl Item {
    /// An item identified by length and SHA-256.
    pub fn with_sha256(length: u64, sha256: [u8; 32]) -> Self {
        Item {
            length,
            sha256: Some(sha256),
            ..Item::default()
        }
    }

    /// An unhashed internal item (legacy format).
    pub fn internal(length: u64, id: u32) -> Self {
        Item {
            length,
            internal: Some(id),
            ..Item::default()
        }
    }

    /// The empty item (length 0, no hash).
    pub fn empty() -> Self {
        Item::default()
    }

    /// Whether both items certainly denote the same bytes.
    pub fn same_as(&self, other: &Item) -> bool {
        if self.length != other.length {
            return false;
        }
        let both =
            |a: Option<&[u8]>, b: Option<&[u8]>| matches!((a, b), (Some(x), Some(y)) if x == y);
        both(
            self.sha256.as_ref().map(|d| &d[..]),
            other.sha256.as_ref().map(|d| &d[..]),
        ) || both(
            self.md5.as_ref().map(|d| &d[..]),
            other.md5.as_ref().map(|d| &d[..]),
        ) || matches!((self.internal, other.internal), (Some(a), Some(b)) if a == b)
    }

    /// Short human-readable description (`len:sha256-prefix`).
    pub fn describe(&self) -> String {
        match (&self.sha256, &self.md5, self.internal) {
            (Some(h), _, _) => format!("{} bytes sha256:{}", self.length, hex(&h[..8])),
            (None, Some(h), _) => format!("{} bytes md5:{}", self.length, hex(&h[..8])),
            (None, None, Some(id)) => format!("{} bytes internal#{id}", self.length),
            _ => format!("{} bytes (no hash)", self.length),
        }
    }
}

/// Lower-case hexadecimal rendering of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The built-in recipe types of the standard format, with their fixed ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipeKind {
    /// `result.length` zero bytes.
    AllZeros = 0,
    /// Concatenation of the item ingredients.
    Chain = 1,
    /// `items[0][numbers[0] .. numbers[0] + result.length]`.
    Slice = 2,
    /// bspatch(old = `items[1]`, patch = `items[0]`), BSDIFF40 with bzip2 blocks.
    BspatchDecompression = 3,
    /// Byte-exact stock-zlib deflate of `items[0]` (`numbers` = init type, level).
    ZlibCompression = 4,
    /// Inflate of `items[0]` (`numbers[0]` = init type).
    ZlibDecompression = 5,
    /// Refused (not reproducible).
    ZstdCompression = 6,
    /// zstd decompression of `items[0]`, optionally with `items[1]` as raw prefix.
    ZstdDecompression = 7,
    /// Extended format only: the exact deflate stream rebuilt from its plain text (`items[0]`)
    /// and a correction blob (`items[1]`) of the codec `numbers[0]`, version `numbers[1]`.
    DeflateReconstruct = 8,
    /// Extended format only: the exact zstd frame of `items[0]` made by this library's libzstd
    /// with the parameters `numbers` = `[encoder, level, flags, window_log, job_size]`
    /// ([`crate::codec::zstd_compress::ZstdParams`]).
    ZstdCompressionExact = 9,
    /// Extended format only: the exact zstd frame of the content `items[0]` rebuilt from a
    /// structure blob (`items[1]`) of the codec `numbers[0]`, version `numbers[1]`
    /// ([`crate::codec::zstd_reconstruct`]).
    ZstdReconstruct = 10,
}

impl RecipeKind {
    /// All kinds in id order (the table the writer emits).
    pub const ALL: [RecipeKind; 8] = [
        RecipeKind::AllZeros,
        RecipeKind::Chain,
        RecipeKind::Slice,
        RecipeKind::BspatchDecompression,
        RecipeKind::ZlibCompression,
        RecipeKind::ZlibDecompression,
        RecipeKind::ZstdCompression,
        RecipeKind::ZstdDecompression,
    ];

    /// The recipe type table of the extended format: the eight built-ins, then ours. A delta
    /// lists it up to the highest id it uses (docs/EXTENDED-FORMAT.md).
    pub const EXTENDED: [RecipeKind; 11] = [
        RecipeKind::AllZeros,
        RecipeKind::Chain,
        RecipeKind::Slice,
        RecipeKind::BspatchDecompression,
        RecipeKind::ZlibCompression,
        RecipeKind::ZlibDecompression,
        RecipeKind::ZstdCompression,
        RecipeKind::ZstdDecompression,
        RecipeKind::DeflateReconstruct,
        RecipeKind::ZstdCompressionExact,
        RecipeKind::ZstdReconstruct,
    ];

    /// Kind for an on-disk id, if it is one of the eight built-ins.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(id).ok()?).copied()
    }

    /// Kind for an on-disk id of the extended format (the built-ins and ours).
    pub fn from_extended_id(id: u32) -> Option<Self> {
        Self::EXTENDED.get(usize::try_from(id).ok()?).copied()
    }

    /// Whether only the extended format may carry this kind.
    pub fn is_extended(self) -> bool {
        self.id() >= Self::ALL.len() as u32
    }

    /// On-disk id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Upstream type name (as written in the recipe type table).
    pub fn name(self) -> &'static str {
        match self {
            RecipeKind::AllZeros => "all_zeros",
            RecipeKind::Chain => "chain",
            RecipeKind::Slice => "slice",
            RecipeKind::BspatchDecompression => "bspatch_decompression",
            RecipeKind::ZlibCompression => "zlib_compression",
            RecipeKind::ZlibDecompression => "zlib_decompression",
            RecipeKind::ZstdCompression => "zstd_compression",
            RecipeKind::ZstdDecompression => "zstd_decompression",
            RecipeKind::DeflateReconstruct => "deflate_reconstruct",
            RecipeKind::ZstdCompressionExact => "zstd_compression_exact",
            RecipeKind::ZstdReconstruct => "zstd_reconstruct",
        }
    }
}

/// zlib framing selected by a recipe's `init_type` number (a codec parameter; defined with the
/// codecs).
pub use crate::codec::ZlibInit;

/// One way of producing `result` from number and item ingredients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// Recipe type.
    pub kind: RecipeKind,
    /// The item this recipe produces.
    pub result: Item,
    /// Number ingredients, in file order.
    pub numbers: Vec<u64>,
    /// Item ingredients, in file order.
    pub items: Vec<Item>,
}

/// Bytes stored verbatim inside the delta (inline assets, compressed remainder, legacy internal
/// items). The bytes are a view of the mapped delta file, never a copy.
#[derive(Clone, Debug)]
pub struct DeltaBlob {
    /// Identity of the bytes.
    pub item: Item,
    /// Offset of the first byte in the delta file (informational; 0 for blobs of nested legacy
    /// deltas, which live inside another blob).
    pub offset: u64,
    /// The bytes themselves (`item.length` of them).
    pub bytes: SharedBytes,
}

/// A legacy `nested_diff_recipe`: `result` is produced by applying the embedded legacy delta
/// `delta_blob` (producible from the delta alone) to `basis`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyNestedDelta {
    /// The item the nested delta produces.
    pub result: Item,
    /// The embedded delta file.
    pub delta_blob: Item,
    /// The nested delta's source.
    pub basis: Item,
}

/// Which serialization a delta used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Standard format, version 2 (big-endian), as written by 3.0.0.
    StandardV2,
    /// Standard format, version 1 in network byte order (2.1.0); same layout as v2.
    StandardV1BigEndian,
    /// Legacy version 0, big-endian (how 3.0.0 reads it).
    LegacyBigEndian,
    /// Legacy version 0, little-endian (what the 1.x tools really wrote).
    LegacyLittleEndian,
    /// Our extended format ([`EXTENDED_REVISION_1`] or [`EXTENDED_REVISION_2`]): the standard
    /// layout with more recipe types; only this library reads it (docs/EXTENDED-FORMAT.md).
    Extended,
}

/// Version field of extended revision 1: the bytes `ADUDIFF` `01` (big-endian u64), a tagged
/// value that no Microsoft version number (0, 1, 2, a future 3, …) can be. The recipe sets are
/// stored as in standard v2. Read, no longer written.
pub const EXTENDED_REVISION_1: u64 = u64::from_be_bytes(*b"ADUDIFF\x01");

/// Version field of extended revision 2 (`ADUDIFF` `02`): revision 1 with the recipe sets
/// packed in one zstd frame ([`crate::format::packed`]). What the writer writes (revision 1
/// when packing would leave the reader's bounds).
pub const EXTENDED_REVISION_2: u64 = u64::from_be_bytes(*b"ADUDIFF\x02");

/// Whether `version` is a revision of the extended format this library reads.
pub fn is_extended_version(version: u64) -> bool {
    version == EXTENDED_REVISION_1 || version == EXTENDED_REVISION_2
}

/// A parsed delta, with nested archives merged in (their recipes and blobs follow the parent's,
/// depth-first, which is upstream's lookup order).
#[derive(Clone, Debug)]
pub struct Delta {
    /// Serialization of the outermost archive.
    pub format: Format,
    /// What applying produces.
    pub target: Item,
    /// The source the generator used (length 0 = none recorded).
    pub source: Item,
    /// Every recipe of every archive, in lookup order.
    pub recipes: Vec<Recipe>,
    /// Every blob stored in the delta file, in lookup order.
    pub blobs: Vec<DeltaBlob>,
    /// Number of nested archives merged into this one (all levels).
    pub nested_archives: usize,
    /// Legacy nested deltas, resolved by the planner (empty for standard deltas).
    pub legacy_nested: Vec<LegacyNestedDelta>,
}
