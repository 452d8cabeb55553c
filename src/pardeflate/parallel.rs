//! Parallel driver (placeholder).
use super::Wrapper;

/// Compress with several threads; output identical to [`super::deflate`].
pub fn deflate_parallel(data: &[u8], wrapper: Wrapper, level: u32, mem_level: u32, _threads: usize) -> Vec<u8> {
    super::deflate(data, wrapper, level, mem_level)
}
