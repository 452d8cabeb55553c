//! # adudiff-gen
//!
//! The host-side tools of `adudiffapi`: SWU archives, the tools' errors, gzip and output, the
//! recompress tool and the delta generator. They build on the apply core, `adudiff-core`, through
//! its public API (`adudiff_core::…`); the `adudiff` command line (`crates/cli`, package
//! `adudiff`) sits above them. The device library (`libadudiffapi.so`) does not depend on this crate.
//!
//! ## Layers
//!
//! A module uses only modules of lower layers (`tests/layering.rs` at the repository root checks
//! every `crate::` path outside test code) and, from the other crates, only `adudiff_core` (layers
//! 1–8, below all of these). The numbering continues that of `adudiff-core` (1–8) and of the
//! `adudiffapi` crate's C boundary (9). Lowest first:
//!
//! 10. [`swu`], [`tool`] — host-side helpers: SWU archives; the tools' errors, gzip and output;
//! 11. [`recompress`];
//! 12. [`generate`] — and the `adudiff` binary above everything, through the public API.

// The host tools need no unsafe code: they reach the core through its safe public API.
#![forbid(unsafe_code)]

pub mod generate;
pub mod recompress;
pub mod swu;
pub mod tool;
