//! Bytes the applier works on, and where it keeps them: input files read with `pread`
//! ([`FileRange`]), shared immutable bytes in memory or in mapped temporary files
//! ([`SharedBytes`]), the scratch space those come from ([`scratch`]), and files published
//! atomically ([`atomic`]).

pub mod atomic;
mod file_range;
pub mod scratch;
mod shared_bytes;

pub use file_range::{FileRange, FileRangeReader};
pub use scratch::Scratch;
pub use shared_bytes::SharedBytes;
