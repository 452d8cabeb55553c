//! Resolution: how to produce the delta's target from the source file, the delta's blobs and its
//! recipes (upstream's "kitchen"). The result is a [`Plan`], a DAG of production steps that the
//! executor streams.
//!
//! Lookup order follows upstream: the source file first, then the delta's blobs; recipes for an
//! item are tried in upstream's order (alphabetical by type name, file order within a type) and
//! the first whose ingredients all resolve wins. Unlike upstream, failures are memoized (no
//! exponential search) and recursion is bounded.

use std::collections::{HashMap, HashSet};

use crate::error::{code, Error, Result};
use crate::format::model::{Delta, Item, Recipe, RecipeKind, ZlibInit};

/// Index of a node in [`Plan::nodes`].
pub type NodeId = usize;

/// Deepest chain of nested ingredients the resolver follows.
pub const MAX_RESOLUTION_DEPTH: usize = 2048;

/// Most plan nodes one delta may need (each costs a little memory; hostile deltas are bounded).
pub const MAX_PLAN_NODES: usize = 1 << 20;

/// How one node's bytes are produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The zero-length string.
    Empty,
    /// The whole source file.
    Source,
    /// `Delta::blobs[index]`, stored in the delta.
    Blob(usize),
    /// Zero bytes.
    Zeros,
    /// Concatenation of the parts.
    Chain(Vec<NodeId>),
    /// `whole[offset .. offset + length]`.
    Slice {
        /// The item sliced.
        whole: NodeId,
        /// First byte taken.
        offset: u64,
    },
    /// bspatch of `old` with `patch` (BSDIFF40).
    Bspatch {
        /// The BSDIFF40 patch.
        patch: NodeId,
        /// The old file.
        old: NodeId,
    },
    /// Byte-exact stock-zlib deflate.
    Deflate {
        /// Uncompressed input.
        input: NodeId,
        /// Framing.
        init: ZlibInit,
        /// zlib level (-1 = default).
        level: i32,
    },
    /// Inflate.
    Inflate {
        /// Compressed input.
        input: NodeId,
        /// Framing.
        init: ZlibInit,
    },
    /// zstd decompression, optionally with a raw-content prefix.
    Zstd {
        /// The zstd frame(s).
        frame: NodeId,
        /// Prefix ("dictionary") referenced by the first frame.
        prefix: Option<NodeId>,
    },
    /// Extended format: an exact deflate stream rebuilt from its plain text and corrections.
    DeflateReconstruct {
        /// The plain text.
        plain: NodeId,
        /// The correction blob.
        corrections: NodeId,
        /// Correction codec (known: [`crate::codec::deflate_reconstruct::CODEC_PREFLATE`]).
        codec: u64,
        /// Codec version.
        version: u64,
    },
    /// Extended format: an exact zstd frame made by this library's libzstd.
    ZstdCompress {
        /// The content.
        input: NodeId,
        /// How libzstd made the frame.
        params: crate::codec::zstd_compress::ZstdParams,
    },
    /// Extended format: an exact zstd frame rebuilt from its content and a structure blob.
    ZstdReconstruct {
        /// The content.
        content: NodeId,
        /// The structure blob.
        structure: NodeId,
    },
}

/// One production step: the item it yields and how.
#[derive(Clone, Debug)]
pub struct Node {
    /// What this node produces (its length is the exact output length).
    pub item: Item,
    /// How.
    pub op: Op,
}

/// The resolved production DAG for one target.
#[derive(Clone, Debug)]
pub struct Plan {
    /// All nodes; ingredients always have smaller ids than the nodes that use them.
    pub nodes: Vec<Node>,
    /// The node producing the target.
    pub root: NodeId,
}

/// Lookup key: one (length, hash) or (length, internal id) identity of an item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Sha256(u64, [u8; 32]),
    Md5(u64, [u8; 16]),
    Internal(u64, u32),
}

fn keys(item: &Item) -> Vec<Key> {
    let mut keys = Vec::with_capacity(2);
    if let Some(h) = item.sha256 {
        keys.push(Key::Sha256(item.length, h));
    }
    if let Some(h) = item.md5 {
        keys.push(Key::Md5(item.length, h));
    }
    if let Some(id) = item.internal {
        keys.push(Key::Internal(item.length, id));
    }
    keys
}

/// Resolves `delta`'s target given the identity of the available source file.
pub fn plan(delta: &Delta, source: &Item) -> Result<Plan> {
    plan_with_limit(delta, source, MAX_PLAN_NODES)
}

/// [`plan`] with another bound than [`MAX_PLAN_NODES`] on the number of plan nodes (lets tests
/// exercise the bound at its edge without deltas of a hundred megabytes).
pub fn plan_with_limit(delta: &Delta, source: &Item, max_nodes: usize) -> Result<Plan> {
    if delta.target.length == 0 {
        return Err(Error::unresolvable(
            "the delta's target item has length 0 (upstream cannot produce an empty target)",
        ));
    }
    plan_item_with_limit(delta, source, &delta.target, max_nodes)?.ok_or_else(|| {
        Error::unresolvable(format!(
            "no recipe produces the target {} from this source and delta",
            delta.target.describe()
        ))
    })
}

/// Resolves any `item` from `delta` and the `source` identity (`Item::empty()` for none);
/// `Ok(None)` when it cannot be produced.
pub fn plan_item(delta: &Delta, source: &Item, item: &Item) -> Result<Option<Plan>> {
    plan_item_with_limit(delta, source, item, MAX_PLAN_NODES)
}

fn plan_item_with_limit(
    delta: &Delta,
    source: &Item,
    item: &Item,
    max_nodes: usize,
) -> Result<Option<Plan>> {
    let mut resolver = Resolver::new(delta, source)?;
    resolver.max_nodes = max_nodes;
    Ok(resolver.resolve(item, 0)?.map(|root| Plan {
        nodes: resolver.nodes,
        root,
    }))
}

struct Resolver<'a> {
    delta: &'a Delta,
    /// Directly available items (source first, then blobs) by key.
    pantry: HashMap<Key, Op>,
    /// Recipe indices by result key, in upstream's trial order.
    cookbook: HashMap<Key, Vec<usize>>,
    nodes: Vec<Node>,
    resolved: HashMap<Key, NodeId>,
    failed: HashSet<Key>,
    in_progress: HashSet<Key>,
    /// Incremented whenever the cycle guard rejects an item; a failure observed while this
    /// changed may succeed via another path, so it is not memoized.
    cycle_rejections: u64,
    /// The one node of the zero-length item (all zero-length ingredients share it, so they cost
    /// no memory however many a delta lists).
    empty: Option<NodeId>,
    /// Bound on `nodes.len()`.
    max_nodes: usize,
}

/// 20301 for a plan structure that cannot grow.
fn out_of_memory(what: &str, entries: usize) -> Error {
    Error::new(
        crate::error::code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
        format!("Not enough memory: {what} cannot grow beyond {entries} entries"),
    )
}

impl<'a> Resolver<'a> {
    fn new(delta: &'a Delta, source: &Item) -> Result<Self> {
        let mut pantry = HashMap::new();
        let mut cookbook: HashMap<Key, Vec<usize>> = HashMap::new();
        // Sized by the delta (up to two keys per item): reserved fallibly, so a delta of a
        // hundred megabytes of recipes under an address-space limit is an error, not an abort.
        pantry
            .try_reserve(2 * delta.blobs.len() + 2)
            .and_then(|()| cookbook.try_reserve(2 * delta.recipes.len()))
            .map_err(|_| out_of_memory("the recipe index", delta.recipes.len()))?;
        for key in keys(source) {
            pantry.entry(key).or_insert(Op::Source);
        }
        for (index, blob) in delta.blobs.iter().enumerate() {
            for key in keys(&blob.item) {
                pantry.entry(key).or_insert(Op::Blob(index));
            }
        }
        for (index, recipe) in delta.recipes.iter().enumerate() {
            for key in keys(&recipe.result) {
                cookbook.entry(key).or_default().push(index);
            }
        }
        for list in cookbook.values_mut() {
            // Upstream tries recipes of one set alphabetically by type name (stable).
            list.sort_by_key(|&i| delta.recipes[i].kind.name());
            list.dedup();
        }
        Ok(Resolver {
            delta,
            pantry,
            cookbook,
            nodes: Vec::new(),
            resolved: HashMap::new(),
            failed: HashSet::new(),
            in_progress: HashSet::new(),
            cycle_rejections: 0,
            empty: None,
            max_nodes: MAX_PLAN_NODES,
        })
    }

    fn add(&mut self, item: &Item, op: Op) -> Result<NodeId> {
        if self.nodes.len() >= self.max_nodes {
            return Err(Error::unresolvable(format!(
                "the delta needs more than {} production steps",
                self.max_nodes
            )));
        }
        // The node list and its index grow fallibly (see `Resolver::new`).
        self.nodes
            .try_reserve(1)
            .and_then(|()| self.resolved.try_reserve(2))
            .map_err(|_| out_of_memory("the production plan", self.nodes.len()))?;
        self.nodes.push(Node {
            item: item.clone(),
            op,
        });
        let id = self.nodes.len() - 1;
        for key in keys(item) {
            self.resolved.entry(key).or_insert(id);
        }
        Ok(id)
    }

    fn resolve(&mut self, item: &Item, depth: usize) -> Result<Option<NodeId>> {
        crate::stack::check("the recipe tree")?;
        if item.length == 0 {
            // Recommendation of the spec: a zero-length ingredient is the empty string.
            if let Some(id) = self.empty {
                return Ok(Some(id));
            }
            let id = self.add(item, Op::Empty)?;
            self.empty = Some(id);
            return Ok(Some(id));
        }
        let item_keys = keys(item);
        if let Some(&id) = item_keys.iter().find_map(|k| self.resolved.get(k)) {
            return Ok(Some(id));
        }
        if let Some(op) = item_keys.iter().find_map(|k| self.pantry.get(k)).cloned() {
            return self.add(item, op).map(Some);
        }
        if item_keys.is_empty() || item_keys.iter().any(|k| self.failed.contains(k)) {
            return Ok(None);
        }
        if item_keys.iter().any(|k| self.in_progress.contains(k)) {
            self.cycle_rejections += 1;
            return Ok(None);
        }
        if depth >= MAX_RESOLUTION_DEPTH {
            return Err(Error::unresolvable(format!(
                "recipes nest deeper than {MAX_RESOLUTION_DEPTH} levels"
            )));
        }

        let mut candidates: Vec<usize> = Vec::new();
        for key in &item_keys {
            if let Some(list) = self.cookbook.get(key) {
                for &index in list {
                    if !candidates.contains(&index) {
                        candidates.push(index);
                    }
                }
            }
        }
        candidates.sort_by_key(|&i| self.delta.recipes[i].kind.name());

        let rejections_before = self.cycle_rejections;
        for key in &item_keys {
            self.in_progress.insert(key.clone());
        }
        let mut outcome = Ok(None);
        for index in candidates {
            let recipe = &self.delta.recipes[index];
            match self.resolve_ingredients(recipe, depth) {
                Ok(Some(ingredients)) => {
                    outcome = self.prepare(item, recipe, ingredients).map(Some);
                    break;
                }
                Ok(None) => continue,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        for key in &item_keys {
            self.in_progress.remove(key);
        }
        if matches!(outcome, Ok(None)) && self.cycle_rejections == rejections_before {
            self.failed.extend(item_keys);
        }
        outcome
    }

    fn resolve_ingredients(
        &mut self,
        recipe: &Recipe,
        depth: usize,
    ) -> Result<Option<Vec<NodeId>>> {
        let mut ids = Vec::with_capacity(recipe.items.len());
        for ingredient in &recipe.items {
            match self.resolve(ingredient, depth + 1)? {
                Some(id) => ids.push(id),
                None => return Ok(None),
            }
        }
        Ok(Some(ids))
    }

    /// Upstream's "prepare" step: checks that need resolved ingredients, then the node.
    fn prepare(
        &mut self,
        item: &Item,
        recipe: &Recipe,
        ingredients: Vec<NodeId>,
    ) -> Result<NodeId> {
        let length = item.length;
        // Counts were validated when the delta was read; stay defensive anyway.
        let missing = || {
            Error::new(
                code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                format!("{} recipe: missing ingredient", recipe.kind.name()),
            )
        };
        let number = |i: usize| recipe.numbers.get(i).copied().ok_or_else(missing);
        let ingredient = |i: usize| ingredients.get(i).copied().ok_or_else(missing);
        let op = match recipe.kind {
            RecipeKind::AllZeros => Op::Zeros,
            RecipeKind::Chain => {
                let total = ingredients
                    .iter()
                    .try_fold(0u64, |acc, &id| acc.checked_add(self.nodes[id].item.length));
                if total != Some(length) {
                    let shown = total.map_or("more than 2^64".to_string(), |t| t.to_string());
                    return Err(Error::new(
                        code::RECIPE_CHAIN_TOTAL_ITEM_LENGTH_MISMATCH,
                        format!(
                            "Total items length for chain is {shown}, but result length is {length}"
                        ),
                    ));
                }
                Op::Chain(ingredients.clone())
            }
            RecipeKind::Slice => {
                let whole = ingredient(0)?;
                let offset = number(0)?;
                let whole_len = self.nodes[whole].item.length;
                if offset.checked_add(length).is_none_or(|end| end > whole_len) {
                    return Err(Error::past_end(offset, length, whole_len).with_context(format!(
                        "slice at offset {offset} of {}",
                        self.nodes[whole].item.describe()
                    )));
                }
                Op::Slice { whole, offset }
            }
            RecipeKind::BspatchDecompression => Op::Bspatch {
                patch: ingredient(0)?,
                old: ingredient(1)?,
            },
            RecipeKind::ZlibCompression => Op::Deflate {
                input: ingredient(0)?,
                init: zlib_init(number(0)?)?,
                level: crate::codec::zlib_level_from_number(number(1)?)?,
            },
            RecipeKind::ZlibDecompression => Op::Inflate {
                input: ingredient(0)?,
                init: zlib_init(number(0)?)?,
            },
            RecipeKind::ZstdDecompression => Op::Zstd {
                frame: ingredient(0)?,
                prefix: ingredients.get(1).copied(),
            },
            RecipeKind::DeflateReconstruct => {
                let (codec, version) = (number(0)?, number(1)?);
                // Refused at resolution: nothing is produced with a codec we do not know.
                crate::codec::deflate_reconstruct::check_codec(codec, version)?;
                Op::DeflateReconstruct {
                    plain: ingredient(0)?,
                    corrections: ingredient(1)?,
                    codec,
                    version,
                }
            }
            RecipeKind::ZstdReconstruct => {
                let (content, structure) = (ingredient(0)?, ingredient(1)?);
                // Refused at resolution: nothing is produced with a codec we do not know, or
                // with lengths no frame can have.
                crate::codec::zstd_reconstruct::check_codec(number(0)?, number(1)?)?;
                crate::codec::zstd_reconstruct::check_lengths(
                    self.nodes[content].item.length,
                    length,
                )?;
                Op::ZstdReconstruct { content, structure }
            }
            RecipeKind::ZstdCompressionExact => {
                let input = ingredient(0)?;
                // Refused at resolution: nothing is produced with parameters we cannot
                // reproduce exactly, or with lengths no frame can have.
                let params = crate::codec::zstd_compress::ZstdParams::from_numbers(&recipe.numbers)?;
                crate::codec::zstd_compress::check_lengths(self.nodes[input].item.length, length)?;
                Op::ZstdCompress { input, params }
            }
            RecipeKind::ZstdCompression => {
                return Err(Error::new(
                    code::RECIPE_ZSTD_COMPRESSION_NOT_SUPPORTED,
                    "zstd_compression_recipe::zstd_compression_recipe(): zstd_compression_recipe is no longer supported",
                ))
            }
        };
        self.add(item, op)
    }
}

/// zlib framing for a recipe's `init_type` number (upstream code 20106 otherwise).
pub fn zlib_init(number: u64) -> Result<ZlibInit> {
    ZlibInit::from_number(number).ok_or_else(|| {
        Error::new(
            code::IO_ZLIB_INIT_TYPE_INVALID,
            format!("Invalid zlib init type: {number} (expected 0 = raw, 1 = gzip, 2 = zlib)"),
        )
    })
}
