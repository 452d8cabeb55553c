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

pub use error::{Error, Result};
