//! Byte sources shared between threads: memory-mapped files and small heap buffers.

mod shared_bytes;

pub use shared_bytes::SharedBytes;
