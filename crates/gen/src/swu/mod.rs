//! SWUpdate images: cpio newc/crc archives and their `sw-description`.

pub mod cpio;
pub mod description;

pub use cpio::{CpioArchive, CpioFormat, CpioHeader, CpioMember};
