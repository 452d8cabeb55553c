//! Stage 1 (parse): the source SWU's members, which are gzip or zstd, and where each payload
//! first occurs.

use std::collections::HashMap;

use adudiff_core::format::writer::item_of;
use adudiff_core::format::Item;
use adudiff_core::io::SharedBytes;

use crate::swu::cpio::{CpioArchive, CpioMember};
use crate::tool::{gzip, ToolResult};

use super::plan::Basis;
use super::progress::Progress;
use super::{map, sha, zstdrebuild, GenerateOptions, Swu};

/// Stage 1 (parse): the source archive, its members, which are gzip, and where each payload
/// first occurs by SHA-256.
pub(super) struct SourceSide {
    pub(super) swu: Swu,
    pub(super) item: Item,
    pub(super) members: Vec<CpioMember>,
    pub(super) gz: Vec<bool>,
    /// Which members are one zstd frame (their content is a basis, decoded by the standard
    /// `zstd_decompression` recipe on the device).
    pub(super) zst: Vec<bool>,
    pub(super) by_hash: HashMap<[u8; 32], u64>,
}

impl SourceSide {
    /// The bytes a delta is made against.
    pub(super) fn basis_bytes(
        &self,
        s_raw: &HashMap<usize, SharedBytes>,
        b: &Basis,
    ) -> SharedBytes {
        if b.decompressed {
            s_raw[&b.member].clone()
        } else {
            self.swu.payload(&self.members[b.member])
        }
    }
}

pub(super) fn parse_source(opts: &GenerateOptions, progress: &Progress) -> ToolResult<SourceSide> {
    let stage = progress.stage("parse", 0);
    let src = map(&opts.source)?;
    let source = Swu {
        archive: CpioArchive::parse(&src).ok(),
        data: src,
    };
    let source_item = item_of(&source.data);
    let src_members: Vec<CpioMember> = source
        .archive
        .as_ref()
        .map(|a| a.files().filter(|m| m.data_len > 0).cloned().collect())
        .unwrap_or_else(|| {
            vec![CpioMember {
                name: opts
                    .source
                    .file_name()
                    .map_or("source".into(), |n| n.to_string_lossy().into_owned()),
                header: Default::default(),
                header_offset: 0,
                header_len: 0,
                data_offset: 0,
                data_len: source.data.len() as u64,
                data_pad: 0,
            }]
        });
    let mut by_hash: HashMap<[u8; 32], u64> = HashMap::new();
    let src_gz: Vec<bool> = src_members
        .iter()
        .map(|m| gzip::is_gzip(&source.payload(m)))
        .collect();
    let src_zst: Vec<bool> = src_members
        .iter()
        .map(|m| zstdrebuild::is_zstd(&source.payload(m)))
        .collect();
    for m in &src_members {
        by_hash
            .entry(sha(&source.payload(m)))
            .or_insert(m.data_offset);
    }
    stage.finish();
    Ok(SourceSide {
        swu: source,
        item: source_item,
        members: src_members,
        gz: src_gz,
        zst: src_zst,
        by_hash,
    })
}
