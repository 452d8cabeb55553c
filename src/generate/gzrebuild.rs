//! gzip files that stock zlib does not reproduce, described for the extended format's
//! `deflate_reconstruct` recipe: each member's header and trailer bytes as they are, and its
//! deflate stream as plain text plus preflate corrections (see
//! [`crate::codec::deflate_reconstruct`]). Every described stream is rebuilt with the
//! applier's own reader before it is accepted.

use std::ops::Range;

use crate::codec::deflate_reconstruct as dr;

/// Most plain text of one gzip file the generator describes this way.
pub const MAX_PLAIN: usize = 4 << 30;

/// One piece of a gzip file, in file order.
#[derive(Clone, Debug)]
pub enum Piece {
    /// Bytes of the file kept as they are (member headers and trailers, trailing padding).
    Literal(Range<usize>),
    /// A deflate stream: `plain` is its range in [`Rebuilt::plain`].
    Deflate {
        /// Its plain text, as a range of [`Rebuilt::plain`].
        plain: Range<usize>,
        /// Its bytes, as a range of the file.
        stream: Range<usize>,
        /// The codec-1 correction blob.
        corrections: Vec<u8>,
    },
}

/// A gzip file as plain text + pieces.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    /// The plain text of all members, concatenated.
    pub plain: Vec<u8>,
    /// The file, piece by piece.
    pub pieces: Vec<Piece>,
}

impl Rebuilt {
    /// Bytes of corrections in all pieces.
    pub fn correction_bytes(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Deflate { corrections, .. } => corrections.len(),
                Piece::Literal(_) => 0,
            })
            .sum()
    }
}

/// Length of the gzip member header at the start of `gz` (RFC 1952 §2.3), if it is one.
pub fn header_len(gz: &[u8]) -> Option<usize> {
    if gz.len() < 10 || gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8 || gz[3] & 0xe0 != 0 {
        return None;
    }
    let flags = gz[3];
    let mut pos = 10usize;
    if flags & 4 != 0 {
        let xlen = u16::from_le_bytes([*gz.get(pos)?, *gz.get(pos + 1)?]) as usize;
        pos = pos.checked_add(2 + xlen)?;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let nul = gz.get(pos..)?.iter().position(|&b| b == 0)?;
            pos += nul + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    (pos <= gz.len()).then_some(pos)
}

/// Describes the gzip file `gz` (one or more members, then possibly zero padding), or `None`
/// when some member is not a deflate stream the codec rebuilds exactly.
pub fn analyse(gz: &[u8]) -> Option<Rebuilt> {
    let mut plain = Vec::new();
    let mut pieces = Vec::new();
    let mut pos = 0usize;
    while pos < gz.len() {
        let rest = &gz[pos..];
        let Some(hlen) = header_len(rest) else {
            // Trailing bytes after the last member (zero padding of some tools) only.
            if pieces.is_empty() {
                return None;
            }
            pieces.push(Piece::Literal(pos..gz.len()));
            break;
        };
        pieces.push(Piece::Literal(pos..pos + hlen));
        let start = pos + hlen;
        let a = dr::analyse(&gz[start..], MAX_PLAIN.saturating_sub(plain.len()))?;
        let stream = start..start + a.deflate_len;
        // The check the applier will make, with the applier's code.
        let rebuilt = dr::rebuild(&a.plain, &a.corrections, a.deflate_len as u64).ok()?;
        if rebuilt[..] != gz[stream.clone()] {
            return None;
        }
        drop(rebuilt);
        let trailer_end = stream.end.checked_add(8).filter(|&e| e <= gz.len())?;
        let crc = u32::from_le_bytes(gz[stream.end..stream.end + 4].try_into().ok()?);
        let isize = u32::from_le_bytes(gz[stream.end + 4..trailer_end].try_into().ok()?);
        if crc != crc32(&a.plain) || isize != a.plain.len() as u32 {
            return None;
        }
        let offset = plain.len();
        plain.extend_from_slice(&a.plain);
        pieces.push(Piece::Deflate {
            plain: offset..plain.len(),
            stream,
            corrections: a.corrections,
        });
        pieces.push(Piece::Literal(trailer_end - 8..trailer_end));
        pos = trailer_end;
    }
    Some(Rebuilt { plain, pieces })
}

fn crc32(data: &[u8]) -> u32 {
    let mut h = flate2::Crc::new();
    h.update(data);
    h.sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    #[cfg_attr(
        target_pointer_width = "32",
        ignore = "preflate-rs 0.7.6 cannot describe this stream on 32-bit targets (found by the armv7 CI); the generator runs on 64-bit hosts"
    )]
    fn multi_member_with_name_and_padding() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} {}\n", i % 977, i / 13).into_bytes())
            .collect();
        let mut gz = Vec::new();
        for (part, level) in [(&text[..100_000], 9), (&text[100_000..], 3)] {
            let mut e = flate2::GzBuilder::new()
                .filename("part.txt")
                .write(Vec::new(), flate2::Compression::new(level));
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        gz.extend([0u8; 7]);
        let r = analyse(&gz).expect("describable");
        assert_eq!(r.plain, text);
        let mut rebuilt = Vec::new();
        for p in &r.pieces {
            match p {
                Piece::Literal(range) => rebuilt.extend_from_slice(&gz[range.clone()]),
                Piece::Deflate {
                    plain,
                    stream,
                    corrections,
                } => rebuilt.extend(
                    dr::rebuild(&r.plain[plain.clone()], corrections, stream.len() as u64).unwrap(),
                ),
            }
        }
        assert_eq!(rebuilt, gz);
        assert!(analyse(b"not gzip at all").is_none());
    }
}
