//! Unit tests of the module internals (differential tests live in `tests/pardeflate_*.rs`).
