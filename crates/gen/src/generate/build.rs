//! Assembling the recipe graph: the target chain, the remainder pieces and the inline assets.

use std::collections::HashMap;

use adudiff_core::format::writer::{item_of, DeltaBuilder};
use adudiff_core::format::{Item, Recipe, RecipeKind};

/// Collects recipes, remainder pieces and inline assets while the target chain is laid out.
#[derive(Default)]
pub struct Assembly {
    /// Recipes so far.
    pub recipes: Vec<Recipe>,
    /// Parts of the target, in order.
    pub chain: Vec<Item>,
    pending: Vec<u8>,
    remainder: Vec<u8>,
    rem_pieces: Vec<(Item, u64)>,
    rem_seen: HashMap<[u8; 32], ()>,
    inline: Vec<u8>,
    ia_pieces: Vec<(Item, u64)>,
    ia_seen: HashMap<[u8; 32], ()>,
}

impl Assembly {
    /// Adds a recipe.
    pub fn recipe(&mut self, kind: RecipeKind, result: &Item, numbers: Vec<u64>, items: Vec<Item>) {
        self.recipes.push(Recipe {
            kind,
            result: result.clone(),
            numbers,
            items,
        });
    }

    /// Appends target bytes that come from the remainder (merged with adjacent ones).
    pub fn literal(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Appends an item produced by recipes to the target chain.
    pub fn part(&mut self, item: Item) {
        self.flush();
        if item.length > 0 {
            self.chain.push(item);
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        let item = item_of(&bytes);
        let sha = item.sha256.expect("hashed");
        if self.rem_seen.insert(sha, ()).is_none() {
            self.rem_pieces
                .push((item.clone(), self.remainder.len() as u64));
            self.remainder.extend_from_slice(&bytes);
        }
        self.chain.push(item);
    }

    /// Stores a delta payload in the inline assets; returns its item.
    pub fn inline_asset(&mut self, bytes: &[u8]) -> Item {
        let item = item_of(bytes);
        let sha = item.sha256.expect("hashed");
        if self.ia_seen.insert(sha, ()).is_none() {
            self.ia_pieces
                .push((item.clone(), self.inline.len() as u64));
            self.inline.extend_from_slice(bytes);
        }
        item
    }

    /// Uncompressed remainder size so far.
    pub fn remainder_len(&self) -> usize {
        self.remainder.len() + self.pending.len()
    }

    /// Inline assets size so far.
    pub fn inline_len(&self) -> usize {
        self.inline.len()
    }

    /// Finishes the layout: the target chain, the slices of the remainder and of the inline
    /// assets (none when a single piece is the whole blob, which would be self-referential).
    pub fn finish(mut self, target: Item, source: Item) -> DeltaBuilder {
        self.flush();
        let chain = std::mem::take(&mut self.chain);
        if !(chain.len() == 1 && chain[0].same_as(&target)) {
            self.recipe(RecipeKind::Chain, &target, vec![], chain);
        }
        if self.rem_pieces.len() > 1 {
            let whole = item_of(&self.remainder);
            for (item, off) in std::mem::take(&mut self.rem_pieces) {
                self.recipe(RecipeKind::Slice, &item, vec![off], vec![whole.clone()]);
            }
        }
        if self.ia_pieces.len() > 1 {
            let whole = item_of(&self.inline);
            for (item, off) in std::mem::take(&mut self.ia_pieces) {
                self.recipe(RecipeKind::Slice, &item, vec![off], vec![whole.clone()]);
            }
        }
        DeltaBuilder {
            target,
            source,
            recipes: self.recipes,
            inline_assets: Some(self.inline),
            remainder: Some(self.remainder),
        }
    }
}
