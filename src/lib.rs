//! # adudiffapi
//!
//! A drop-in replacement for Microsoft's `libadudiffapi.so`, the Azure Device Update delta
//! processor. The crate is layered the way an apply flows:
//!
//! * [`format`](mod@format) — parse (and write) PAMZ deltas, standard v2 and legacy v0, into one model;
//! * [`plan`] — resolve the target item through the delta's recipes into a production plan;
//! * [`execute`] — stream the plan into the target file, verifying hashes, never leaving a
//!   partial target;
//! * [`codec`] — the byte transforms recipes use (stock-zlib deflate, inflate, zstd, bspatch);
//! * [`ffi`] — the C ABI the Device Update agent calls.
//!
//! ## Layers
//!
//! A module uses only modules of lower layers (`tests/layering.rs` checks every `crate::` path
//! outside test code), so the module graph has no cycle and the device library's core never
//! reaches into the tools. Lowest first:
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
//! 9. [`ffi`] — the C boundary;
//! 10. [`swu`], [`tool`] — host-side helpers: SWU archives; the tools' errors, gzip and output;
//! 11. [`recompress`];
//! 12. [`generate`] — and the `adudiff` binary above everything, through the public API.

pub mod apply;
pub mod codec;
pub mod error;
pub mod execute;
pub mod ffi;
pub mod format;
pub mod generate;
pub mod io;
pub mod pardeflate;
pub mod plan;
pub mod recompress;
pub mod stack;
pub mod swu;
pub mod sync;
pub mod tool;

pub use error::{Error, Result};
