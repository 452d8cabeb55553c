//! PAMZ delta serialization: the model, the readers (standard v2, legacy v0) and the writer.

pub mod model;
pub mod reader;
pub mod writer;

pub use model::*;
