//! The target SWU analysed once ([`TargetAnalysis`]): mapped, parsed and hashed, with each
//! member's decoding and rebuild description computed on first use and shared by every
//! generation to that target.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use adudiff_core::format::writer::item_of;
use adudiff_core::format::{hex, Item};
use adudiff_core::io::SharedBytes;

use crate::swu::cpio::CpioArchive;
use crate::tool::{fail, gzip, ToolResult};

use super::{gzrebuild, map, zstdrebuild, Swu};

/// A target member decoded from gzip, with the zlib level that reproduces it (`None`: not
/// reproducible); `None` as a whole when the member does not decode.
pub(super) type DecodedMember = Option<(SharedBytes, Option<i32>)>;

/// A gzip member that zlib does not reproduce described for `deflate_reconstruct`: its plain
/// text and pieces (`None`: the codec cannot describe it).
pub(super) type RebuiltMember = Option<(SharedBytes, Arc<Vec<gzrebuild::Piece>>)>;

/// A target SWU read and analysed once, so that deltas from several sources to it
/// (`adudiff release`) share the work: the file mapping, the cpio parse, the target's identity
/// (length and SHA-256) and each gzip member's decompressed content and reproducing zlib level.
///
/// Members are decoded on first use by any generation (and only once, also when several
/// generations run in parallel); the decoded contents stay in memory as long as the analysis
/// lives, which a single generation would need anyway.
pub struct TargetAnalysis {
    pub(super) swu: Swu,
    pub(super) item: Item,
    pub(super) decoded: Vec<OnceLock<DecodedMember>>,
    pub(super) rebuilt: Vec<OnceLock<RebuiltMember>>,
    pub(super) zstd: Vec<OnceLock<ZstdMember>>,
}

/// A zstd member decoded, with the parameters that make its frame again (`Err`: why it is not
/// rebuilt; the content is `None` when the member does not decode).
pub(super) type ZstdMember = (Option<SharedBytes>, Result<zstdrebuild::ZstdRecipe, String>);

impl TargetAnalysis {
    /// Maps and parses the target SWU at `path` and hashes it.
    pub fn open(path: &Path) -> ToolResult<Self> {
        let data = map(path)?;
        if data.is_empty() {
            return Err(fail(path.display(), "empty target"));
        }
        let archive = CpioArchive::parse(&data)
            .map_err(|e| fail(path.display(), format!("not a cpio newc/crc SWU ({e})")))?;
        let members = archive.files().count();
        let item = item_of(&data);
        Ok(TargetAnalysis {
            swu: Swu {
                data,
                archive: Some(archive),
            },
            item,
            decoded: (0..members).map(|_| OnceLock::new()).collect(),
            rebuilt: (0..members).map(|_| OnceLock::new()).collect(),
            zstd: (0..members).map(|_| OnceLock::new()).collect(),
        })
    }

    /// Size of the target in bytes.
    pub fn size(&self) -> u64 {
        self.item.length
    }

    /// SHA-256 of the target.
    pub fn sha256(&self) -> [u8; 32] {
        self.item.sha256.expect("item_of hashes")
    }

    /// The gzip member at `index` described for `deflate_reconstruct`, computed on first use.
    pub(super) fn rebuilt(&self, index: usize, payload: &[u8]) -> RebuiltMember {
        self.rebuilt[index]
            .get_or_init(|| {
                gzrebuild::analyse(payload)
                    .map(|r| (SharedBytes::from_vec(r.plain), Arc::new(r.pieces)))
            })
            .clone()
    }

    /// The zstd member at `index` decoded and its parameters searched, computed on first use.
    pub(super) fn zstd(&self, index: usize, payload: &[u8]) -> ZstdMember {
        self.zstd[index]
            .get_or_init(|| match zstdrebuild::decode(payload) {
                Err(why) => (None, Err(why)),
                Ok(content) => {
                    let found = zstdrebuild::find_recipe(&content, payload);
                    (Some(SharedBytes::from_vec(content)), found)
                }
            })
            .clone()
    }

    /// The gzip member at `index` (in archive order) decoded, computed on first use.
    pub(super) fn decoded(&self, index: usize, payload: &[u8]) -> DecodedMember {
        self.decoded[index]
            .get_or_init(|| {
                gzip::gunzip(payload).ok().map(|raw| {
                    let level = gzip::find_gzip_level(&raw, payload);
                    (SharedBytes::from_vec(raw), level)
                })
            })
            .clone()
    }
}

impl std::fmt::Debug for TargetAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetAnalysis")
            .field("size", &self.size())
            .field("sha256", &hex(&self.sha256()))
            .finish_non_exhaustive()
    }
}
