//! # adudiff-core
//!
//! The apply core of `adudiffapi`, the drop-in replacement for Microsoft's `libadudiffapi.so`
//! (the Azure Device Update delta processor). The C boundary (`libadudiffapi.so`) is the
//! `adudiffapi` crate at the repository root, which re-exports these modules; the host tools
//! (generator, recompress, the `adudiff` binary) are `adudiff-gen` and the root's binary. This
//! crate is layered the way an apply flows:
//!
//! * [`format`](mod@format) — parse (and write) PAMZ deltas, standard v2 and legacy v0, into one model;
//! * [`plan`] — resolve the target item through the delta's recipes into a production plan;
//! * [`execute`] — stream the plan into the target file, verifying hashes, never leaving a
//!   partial target;
//! * [`codec`] — the byte transforms recipes use (stock-zlib deflate, inflate, zstd, bspatch).
//!
//! ## Layers
//!
//! A module uses only modules of lower layers (`tests/layering.rs` at the repository root checks
//! every `crate::` path outside test code), so the module graph has no cycle. The crate depends
//! on neither the C boundary nor the tools. Lowest first (the numbering continues in the
//! `adudiffapi` crate, layer 9, and in `adudiff-gen`, layers 10–12):
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
//! 8. [`apply`] — the apply sequence.

pub mod apply;
pub mod codec;
pub mod error;
pub mod execute;
pub mod format;
pub mod io;
pub mod pardeflate;
pub mod plan;
pub mod stack;
pub mod sync;

pub use error::{Error, Result};
