//! cpio "newc" (`070701`) and "crc" (`070702`) archives with exact byte offsets.
//!
//! Each member is `header (110 bytes) | name + NUL | pad to 4 | payload | pad to 4`, offsets
//! counted from the start of the archive. The archive ends with a `TRAILER!!!` member; whatever
//! follows it (usually zero padding to a 512-byte block) is kept as the *tail*.

use std::fmt;

/// The two ASCII cpio formats SWUpdate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioFormat {
    /// `070701`, check field 0.
    Newc,
    /// `070702`, check field = 32-bit sum of the payload bytes.
    Crc,
}

impl CpioFormat {
    /// The 6-byte magic.
    pub fn magic(self) -> &'static [u8; 6] {
        match self {
            CpioFormat::Newc => b"070701",
            CpioFormat::Crc => b"070702",
        }
    }
}

/// A cpio parse error, with the offset where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioError {
    /// Byte offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpio error at offset {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for CpioError {}

/// The 13 numeric header fields, in header order (magic excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpioHeader {
    /// Inode number.
    pub ino: u32,
    /// File mode.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: u32,
    /// Payload size.
    pub filesize: u32,
    /// Device major.
    pub devmajor: u32,
    /// Device minor.
    pub devminor: u32,
    /// rdev major.
    pub rdevmajor: u32,
    /// rdev minor.
    pub rdevminor: u32,
    /// Name length including the NUL.
    pub namesize: u32,
    /// Check field (crc format: sum of payload bytes).
    pub check: u32,
}

impl CpioHeader {
    fn fields(&self) -> [u32; 13] {
        [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.devmajor,
            self.devminor,
            self.rdevmajor,
            self.rdevminor,
            self.namesize,
            self.check,
        ]
    }

    fn from_fields(f: [u32; 13]) -> Self {
        CpioHeader {
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            filesize: f[6],
            devmajor: f[7],
            devminor: f[8],
            rdevmajor: f[9],
            rdevminor: f[10],
            namesize: f[11],
            check: f[12],
        }
    }

    /// The 110-byte ASCII header.
    pub fn encode(&self, format: CpioFormat) -> [u8; 110] {
        let mut out = [0u8; 110];
        out[..6].copy_from_slice(format.magic());
        for (i, v) in self.fields().iter().enumerate() {
            out[6 + 8 * i..14 + 8 * i].copy_from_slice(format!("{v:08X}").as_bytes());
        }
        out
    }
}

/// 32-bit sum of all bytes (the crc format's "check" field).
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |acc, &b| acc.wrapping_add(b as u32))
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// One member with the exact position of each of its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpioMember {
    /// Name without the NUL.
    pub name: String,
    /// Decoded header.
    pub header: CpioHeader,
    /// Offset of the 110-byte header.
    pub header_offset: u64,
    /// Length of header + name + NUL + padding (the "header chunk").
    pub header_len: u64,
    /// Offset of the payload.
    pub data_offset: u64,
    /// Payload length.
    pub data_len: u64,
    /// Padding after the payload.
    pub data_pad: u64,
}

impl CpioMember {
    /// Offset just after this member (after the payload padding).
    pub fn end(&self) -> u64 {
        self.data_offset + self.data_len + self.data_pad
    }

    /// Whether this is the `TRAILER!!!` member.
    pub fn is_trailer(&self) -> bool {
        self.name == "TRAILER!!!"
    }
}

/// A parsed archive: members (the trailer last) and the tail after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpioArchive {
    /// Format of the first member (all members must share it).
    pub format: CpioFormat,
    /// Every member in archive order, including the trailer.
    pub members: Vec<CpioMember>,
    /// Offset where the bytes after the trailer start.
    pub tail_offset: u64,
    /// Total archive length.
    pub total_len: u64,
}

fn hex_field(b: &[u8], offset: u64) -> Result<u32, CpioError> {
    let s = std::str::from_utf8(b).ok();
    s.and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| CpioError {
            offset,
            reason: format!("invalid hex field {:?}", String::from_utf8_lossy(b)),
        })
}

impl CpioArchive {
    /// Parses `data` (newc or crc). Fails on any other magic, a truncated member or a missing
    /// trailer.
    pub fn parse(data: &[u8]) -> Result<Self, CpioError> {
        let mut pos = 0u64;
        let mut members = Vec::new();
        let mut format = None;
        let len = data.len() as u64;
        loop {
            if pos + 110 > len {
                return Err(CpioError {
                    offset: pos,
                    reason: "truncated header (no TRAILER!!! member)".into(),
                });
            }
            let h = &data[pos as usize..pos as usize + 110];
            let this_format = match &h[..6] {
                b"070701" => CpioFormat::Newc,
                b"070702" => CpioFormat::Crc,
                other => {
                    return Err(CpioError {
                        offset: pos,
                        reason: format!(
                            "not a newc/crc cpio header (magic {:?})",
                            String::from_utf8_lossy(other)
                        ),
                    })
                }
            };
            if *format.get_or_insert(this_format) != this_format {
                return Err(CpioError {
                    offset: pos,
                    reason: "mixed newc and crc headers".into(),
                });
            }
            let mut f = [0u32; 13];
            for (i, v) in f.iter_mut().enumerate() {
                let at = 6 + 8 * i;
                *v = hex_field(&h[at..at + 8], pos + at as u64)?;
            }
            let header = CpioHeader::from_fields(f);
            let name_start = pos + 110;
            let namesize = header.namesize as u64;
            if namesize == 0 || name_start + namesize > len {
                return Err(CpioError {
                    offset: pos,
                    reason: "bad or truncated name".into(),
                });
            }
            let raw_name = &data[name_start as usize..(name_start + namesize) as usize];
            let name = String::from_utf8_lossy(raw_name.strip_suffix(&[0]).unwrap_or(raw_name))
                .into_owned();
            let header_len = 110 + namesize + pad4(110 + namesize);
            let data_offset = pos + header_len;
            let data_len = header.filesize as u64;
            let data_pad = pad4(data_len);
            if data_offset + data_len > len {
                return Err(CpioError {
                    offset: pos,
                    reason: format!("member {name:?}: payload runs past the end of the archive"),
                });
            }
            let member = CpioMember {
                name,
                header,
                header_offset: pos,
                header_len,
                data_offset,
                data_len,
                data_pad: data_pad.min(len - data_offset - data_len),
            };
            pos = member.end();
            let trailer = member.is_trailer();
            members.push(member);
            if trailer {
                break;
            }
        }
        Ok(CpioArchive {
            format: format.expect("at least one member"),
            members,
            tail_offset: pos,
            total_len: len,
        })
    }

    /// The member called `name` (first match), if any.
    pub fn find(&self, name: &str) -> Option<&CpioMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Members other than the trailer.
    pub fn files(&self) -> impl Iterator<Item = &CpioMember> {
        self.members.iter().filter(|m| !m.is_trailer())
    }
}

/// Appends one member (regenerated header, name, padding, payload, padding) to `out`. `filesize`,
/// `namesize` and (crc format) `check` are computed; the other fields come from `header`.
pub fn write_member(
    out: &mut Vec<u8>,
    format: CpioFormat,
    header: &CpioHeader,
    name: &str,
    data: &[u8],
) {
    let mut h = *header;
    h.filesize = data.len() as u32;
    h.namesize = name.len() as u32 + 1;
    h.check = match format {
        CpioFormat::Crc => checksum(data),
        CpioFormat::Newc => 0,
    };
    let start = out.len() as u64;
    out.extend_from_slice(&h.encode(format));
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    let p = pad4(out.len() as u64 - start);
    out.resize(out.len() + p as usize, 0);
    out.extend_from_slice(data);
    out.resize(out.len() + pad4(data.len() as u64) as usize, 0);
}

/// Appends a `TRAILER!!!` member.
pub fn write_trailer(out: &mut Vec<u8>, format: CpioFormat) {
    let h = CpioHeader {
        nlink: 1,
        ..CpioHeader::default()
    };
    write_member(out, format, &h, "TRAILER!!!", &[]);
}

/// Header fields for a new regular file (mode 0644, root-owned, mtime 0).
pub fn regular_file_header(ino: u32) -> CpioHeader {
    CpioHeader {
        ino,
        mode: 0o100644,
        nlink: 1,
        ..CpioHeader::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_exact_offsets() {
        for format in [CpioFormat::Newc, CpioFormat::Crc] {
            let mut a = Vec::new();
            write_member(
                &mut a,
                format,
                &regular_file_header(1),
                "sw-description",
                b"abcde",
            );
            write_member(&mut a, format, &regular_file_header(2), "x", &[7u8; 9]);
            write_trailer(&mut a, format);
            let tail = a.len();
            a.resize(a.len().div_ceil(512) * 512, 0);
            let arc = CpioArchive::parse(&a).unwrap();
            assert_eq!(arc.format, format);
            assert_eq!(arc.members.len(), 3);
            let m = &arc.members[0];
            assert_eq!(
                (m.header_offset, m.header_len, m.data_offset),
                (0, 128, 128)
            );
            assert_eq!((m.data_len, m.data_pad), (5, 3));
            assert_eq!(arc.members[1].header_offset, 136);
            assert_eq!(arc.members[1].header_len, 112);
            let expected_check = if format == CpioFormat::Crc { 63 } else { 0 };
            assert_eq!(arc.members[1].header.check, expected_check);
            assert_eq!(arc.tail_offset as usize, tail);
            assert!(arc.members[2].is_trailer());
        }
    }

    #[test]
    fn rejects_odc_and_truncation() {
        assert!(CpioArchive::parse(b"070707000000").is_err());
        let mut a = Vec::new();
        write_member(
            &mut a,
            CpioFormat::Newc,
            &regular_file_header(1),
            "f",
            b"data",
        );
        assert!(CpioArchive::parse(&a).is_err()); // no trailer
    }
}
