//! Delta generation: SWU-aware planning, member diffing (bsdiff / zstd patch-from) and writing.

pub mod zlib;
