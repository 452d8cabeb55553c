//! # adudiffapi
//!
//! A drop-in replacement for Microsoft's `libadudiffapi.so`, the Azure Device Update delta
//! processor. This crate is the C boundary: the `cdylib` `libadudiffapi.so` built from
//! [`ffi`], the C ABI the Device Update agent calls. The code it runs lives in the workspace's
//! other crates:
//!
//! * `adudiff-core` (`crates/core`) — the apply core, layered the way an apply flows:
//!   [`format`](mod@format) parses (and writes) PAMZ deltas, standard v2 and legacy v0, into one
//!   model; [`plan`] resolves the target item through the delta's recipes into a production plan;
//!   [`execute`] streams the plan into the target file, verifying hashes, never leaving a partial
//!   target; [`codec`] holds the byte transforms recipes use (stock-zlib deflate, inflate, zstd,
//!   bspatch);
//! * `adudiff-gen` (`crates/gen`) — the host tools (SWU archives, recompress, the generator),
//!   used by the `adudiff` command line (`crates/cli`, package `adudiff`); this package never
//!   depends on it.
//!
//! The core's modules are re-exported here (`adudiffapi::format`, `adudiffapi::apply`, …) for
//! Rust users of this crate and for its tests; they are `adudiff_core`'s modules, not copies.
//!
//! ## Layers
//!
//! A module uses only modules of lower layers (`tests/layering.rs` checks every `crate::` path
//! outside test code, per crate), so the module graph has no cycle and the device library's core
//! never reaches into the tools. Lowest first:
//!
//! 1. [`error`] — upstream's error codes and the error type;
//! 2. [`io`], [`stack`], [`sync`] — bytes, scratch space, atomic files; stack depth; locking;
//! 3. [`pardeflate`] — the byte-exact deflate port;
//! 4. [`codec`] — the recipes' byte transforms. They know nothing of the delta format (the zlib
//!    framing, [`codec::ZlibInit`], is a codec parameter), so the format's writer and the planner
//!    can use them;
//! 5. [`format`](mod@format) — the delta model, its readers and writer;
//! 6. [`plan`] — recipes resolved into a plan;
//! 7. [`execute`] — a plan run into the target;
//! 8. [`apply`] — the apply sequence;
//! 9. [`ffi`] — the C boundary (this crate);
//! 10. `swu`, `tool` (crate `adudiff-gen`) — host-side helpers: SWU archives; the tools'
//!     errors, gzip and output;
//! 11. `recompress` (`adudiff-gen`);
//! 12. `generate` (`adudiff-gen`) — and the `adudiff` binary above everything, through the
//!     public API.
//!
//! Layers 1–8 are crate `adudiff-core`, 9 this crate, 10–12 crate `adudiff-gen`.

pub mod ffi;

/// The apply core's modules and error type, re-exported from `adudiff-core` (`crates/core`),
/// where the code lives.
pub use adudiff_core::{
    apply, codec, error, execute, format, io, pardeflate, plan, stack, sync, Error, Result,
};
