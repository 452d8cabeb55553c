//! gzip files that stock zlib does not reproduce, described for the extended format's
//! `deflate_reconstruct` recipe: each member's header and trailer bytes as they are, and its
//! deflate stream as plain text plus either the name of the encoder that reproduces it
//! exactly (codec 2: GNU gzip's own deflate at some level — what `gzip` and Debian's `.gz`
//! files are made with; no corrections) or preflate corrections (codec 1, any other encoder),
//! see [`adudiff_core::codec::deflate_reconstruct`]. Every described stream is rebuilt with the
//! applier's own reader before it is accepted.

use std::ops::Range;

use adudiff_core::codec::deflate_reconstruct as dr;
use adudiff_core::codec::pigz;

/// Most plain text of one gzip file the generator describes this way: 4 GiB on 64-bit hosts,
/// 1 GiB on 32-bit ones, whose 3 GiB of address space also hold the compressed file and the
/// re-encoding check. (Written as `4 << 30` for every target, this was 0 on 32-bit targets —
/// the shift wraps without an overflow error — and no gzip file was ever described there.)
pub const MAX_PLAIN: usize = if cfg!(target_pointer_width = "64") {
    (4u64 << 30) as usize
} else {
    1 << 30
};
// Checked when the crate is built for each target.
const _: () = assert!(MAX_PLAIN >= 1 << 30);

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
        /// The recipe's codec and codec version.
        codec: (u64, u64),
        /// The codec's blob (codec 1: corrections; codec 2: the encoder's name and level).
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

/// How a file's deflate streams are rebuilt, for summaries: `GNU gzip -LEVEL` or
/// `pigz -LEVEL [-i] [--rsyncable]` when every stream is re-encoded exactly (codec 2) the
/// same way, else "preflate" (corrections).
pub fn rebuilt_by(pieces: &[Piece]) -> String {
    let mut labels = pieces.iter().filter_map(|p| match p {
        Piece::Deflate {
            codec, corrections, ..
        } => Some(
            (codec.0 == dr::CODEC_EXACT)
                .then(|| exact_label(corrections))
                .flatten(),
        ),
        Piece::Literal(_) => None,
    });
    let first = labels.next().flatten();
    match first {
        Some(label) if labels.all(|l| l.as_ref() == Some(&label)) => label,
        _ => "preflate".into(),
    }
}

/// The encoder a codec-2 blob names, as its command line.
fn exact_label(blob: &[u8]) -> Option<String> {
    match *blob.get(4)? {
        dr::EXACT_GNU_GZIP => Some(format!("GNU gzip -{}", blob.last()?)),
        pigz::ENCODER_PIGZ => {
            let params = pigz::PigzParams::from_blob(blob, 0).ok().or_else(|| {
                // The explicit layout's lengths do not add up to 0: read the header only.
                let flags = *blob.get(6)?;
                Some(pigz::PigzParams {
                    level: u32::from(*blob.get(5)?),
                    independent: flags & pigz::FLAG_INDEPENDENT != 0,
                    layout: if flags & pigz::FLAG_EXPLICIT != 0 {
                        pigz::Layout::Explicit {
                            block: 0,
                            pieces: Vec::new(),
                        }
                    } else {
                        pigz::Layout::Fixed(0)
                    },
                })
            })?;
            let mut label = format!("pigz -{}", params.level);
            if params.independent {
                label.push_str(" -i");
            }
            if matches!(params.layout, pigz::Layout::Explicit { .. }) {
                label.push_str(" --rsyncable");
            }
            Some(label)
        }
        _ => None,
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
/// when some member is not a deflate stream the codecs rebuild exactly.
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
        let xfl = rest[8];
        let member = describe_stream(&gz[start..], xfl, MAX_PLAIN.saturating_sub(plain.len()))?;
        let stream = start..start + member.deflate_len;
        let trailer_end = stream.end.checked_add(8).filter(|&e| e <= gz.len())?;
        let crc = u32::from_le_bytes(gz[stream.end..stream.end + 4].try_into().ok()?);
        let isize = u32::from_le_bytes(gz[stream.end + 4..trailer_end].try_into().ok()?);
        if crc != crc32(&member.plain) || isize != member.plain.len() as u32 {
            return None;
        }
        let offset = plain.len();
        plain.extend_from_slice(&member.plain);
        pieces.push(Piece::Deflate {
            plain: offset..plain.len(),
            stream,
            codec: member.codec,
            corrections: member.blob,
        });
        pieces.push(Piece::Literal(trailer_end - 8..trailer_end));
        pos = trailer_end;
    }
    Some(Rebuilt { plain, pieces })
}

/// One deflate stream described for `deflate_reconstruct`.
struct Described {
    plain: Vec<u8>,
    deflate_len: usize,
    codec: (u64, u64),
    blob: Vec<u8>,
}

/// The raw deflate stream at the start of `data` (followed by anything), described by codec
/// 2 when GNU gzip at some level or pigz reproduces it, else by codec 1. `xfl` is the gzip
/// header's extra-flags byte (GNU gzip and pigz write 2 for `-9`, 4 for `-1`, 0 otherwise),
/// which orders the levels tried.
fn describe_stream(data: &[u8], xfl: u8, max_plain: usize) -> Option<Described> {
    let (plain, deflate_len) = inflate_raw_prefix(data, max_plain)?;
    let stream = &data[..deflate_len];
    let exact = gnu_gzip_stream(&plain, stream, xfl)
        .map(|blob| ((dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION), blob))
        .or_else(|| {
            pigz_stream(&plain, stream, xfl)
                .map(|blob| ((dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ), blob))
        });
    if let Some((codec, blob)) = exact {
        return Some(Described {
            plain,
            deflate_len,
            codec,
            blob,
        });
    }
    drop(plain);
    let a = dr::analyse(data, max_plain)?;
    // The check the applier will make, with the applier's code.
    let rebuilt = dr::rebuild(&a.plain, &a.corrections, a.deflate_len as u64).ok()?;
    if rebuilt[..] != data[..a.deflate_len] {
        return None;
    }
    Some(Described {
        plain: a.plain,
        deflate_len: a.deflate_len,
        codec: (dr::CODEC_PREFLATE, dr::CODEC_PREFLATE_VERSION),
        blob: a.corrections,
    })
}

/// Plain text compressed per level in [`gnu_gzip_stream`]'s quick test.
const PROBE_PLAIN: usize = 1 << 20;

/// Levels to try for an `xfl` byte, likeliest first.
fn levels_for(xfl: u8) -> &'static [u32] {
    match xfl {
        2 => &[9],
        4 => &[1],
        _ => &[6, 5, 7, 8, 4, 3, 2],
    }
}

/// The codec-2 blob (version 1) if GNU gzip at some level writes exactly `stream` from
/// `plain`.
///
/// Each candidate level first compresses the first MiB of the text: GNU gzip's blocks before
/// the last one of that probe are the stream's own blocks, so a level whose probe agrees with
/// the stream over all but the last 64 KiB (or wholly, for a short text) is the one; it is
/// then checked over the whole stream with the applier's own reader.
fn gnu_gzip_stream(plain: &[u8], stream: &[u8], xfl: u8) -> Option<Vec<u8>> {
    use adudiff_core::pardeflate::{deflate_as, Encoder, Wrapper};
    let probe = &plain[..plain.len().min(PROBE_PLAIN)];
    let whole = probe.len() == plain.len();
    let level = levels_for(xfl).iter().copied().find(|&level| {
        if level < 4 && plain.len() as u64 > dr::MAX_EXACT_FAST_PLAIN {
            return false;
        }
        let out = deflate_as(probe, Wrapper::Raw, level, Encoder::GnuGzip);
        if whole {
            return out == stream;
        }
        let agree = out.iter().zip(stream).take_while(|(a, b)| a == b).count();
        agree + (64 << 10) >= out.len() && agree > out.len() / 2
    })?;
    let blob = dr::exact_gnu_gzip_blob(level);
    let codec = (dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION);
    let rebuilt = dr::rebuild_with(plain, codec.0, codec.1, &blob, stream.len() as u64).ok()?;
    (rebuilt[..] == *stream).then_some(blob)
}

/// Output a pigz guess compresses before it is compared with the stream's start (a few jobs).
const PIGZ_PROBE_OUT: usize = 48 << 10;
/// `-b` values tried for `--rsyncable` streams (bytes), likeliest first.
const PIGZ_RSYNC_BLOCKS: [u32; 6] = [128 << 10, 32 << 10, 64 << 10, 256 << 10, 512 << 10, 1 << 20];

/// The codec-2 blob (version 2) if pigz (levels 1–9, any `-b`, `-i`, `--rsyncable`, with stock zlib)
/// wrote `stream` from `plain`.
///
/// The stream's empty blocks (pigz's byte-alignment markers) sit at job ends: their offsets'
/// greatest common divisor is the job size of a fixed layout; streams whose markers have no
/// such divisor are tried as `--rsyncable` with pigz's own job cutting for each likely `-b`
/// whose sub-block ends include every marker. Each guess (layout ×
/// `-i` × level) first encodes a few jobs and is compared with the stream's start; the first
/// that agrees is checked over the whole stream with the applier's own (parallel) reader.
fn pigz_stream(plain: &[u8], stream: &[u8], xfl: u8) -> Option<Vec<u8>> {
    let (markers, len) = pigz::empty_block_offsets(stream, plain.len() as u64)?;
    if len != stream.len() {
        return None;
    }
    let plain_len = plain.len() as u64;
    let gcd = markers
        .iter()
        .filter(|&&o| o < plain_len)
        .fold(0u64, |g, &o| gcd(g, o));
    let mut fixed: Vec<u32> = Vec::new();
    if (pigz::MIN_BLOCK..=pigz::MAX_BLOCK).contains(&gcd) {
        fixed.push(gcd as u32);
    }
    if gcd == 0 || gcd % (128 << 10) == 0 {
        fixed.push(128 << 10);
    }
    fixed.dedup();
    let rsync = !(gcd == 0 || gcd >= pigz::MIN_BLOCK);
    let layouts: Box<dyn Iterator<Item = pigz::Layout>> = if rsync {
        Box::new(PIGZ_RSYNC_BLOCKS.into_iter().filter_map(|block| {
            let pieces: Vec<(u32, bool)> = pigz::rsyncable_jobs(plain, block as usize)
                .into_iter()
                .flat_map(|job| {
                    let n = job.len();
                    job.into_iter()
                        .enumerate()
                        .map(move |(i, l)| (l, i + 1 == n))
                })
                .collect();
            // Every marker must sit at a sub-block end of this layout (jobs that end without a
            // hash hit, in long runs of zeros, are where the guesses of `-b` differ).
            let ends: Vec<u64> = pieces
                .iter()
                .scan(0u64, |end, &(len, _)| {
                    *end += u64::from(len);
                    Some(*end)
                })
                .collect();
            let fits = markers
                .iter()
                .filter(|&&o| o < plain_len)
                .all(|o| ends.binary_search(o).is_ok());
            fits.then_some(pigz::Layout::Explicit { block, pieces })
        }))
    } else {
        Box::new(fixed.into_iter().map(pigz::Layout::Fixed))
    };
    let likely = levels_for(xfl);
    let mut levels = likely.to_vec();
    levels.extend((1..=9).filter(|l| !likely.contains(l)));
    // Whole-stream checks allowed (a guess can agree with the first jobs only).
    let mut checks = 3;
    for layout in layouts {
        for independent in [false, true] {
            for &level in &levels {
                let params = pigz::PigzParams {
                    level,
                    independent,
                    layout: layout.clone(),
                };
                let probe = pigz::encode_prefix(plain, &params, PIGZ_PROBE_OUT).ok()?;
                if !stream.starts_with(&probe) {
                    continue;
                }
                let blob = params.to_blob();
                let codec = (dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ);
                let rebuilt = dr::rebuild_with(plain, codec.0, codec.1, &blob, len as u64);
                if rebuilt.is_ok_and(|r| r[..] == *stream) {
                    return Some(blob);
                }
                checks -= 1;
                if checks == 0 {
                    return None;
                }
            }
        }
    }
    None
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Inflates the raw deflate stream at the start of `data`: its plain text and its length in
/// bytes (`None` if it is not one or has more than `max_plain` bytes of text).
fn inflate_raw_prefix(data: &[u8], max_plain: usize) -> Option<(Vec<u8>, usize)> {
    let mut d = flate2::Decompress::new(false);
    let mut plain = Vec::with_capacity(data.len().saturating_mul(3).min(max_plain));
    loop {
        if plain.len() == plain.capacity() {
            if plain.len() >= max_plain {
                return None;
            }
            plain.reserve((plain.len() + (1 << 20)).min(max_plain - plain.len()));
        }
        let in_pos = d.total_in() as usize;
        let status = d
            .decompress_vec(&data[in_pos..], &mut plain, flate2::FlushDecompress::None)
            .ok()?;
        match status {
            flate2::Status::StreamEnd => return Some((plain, d.total_in() as usize)),
            flate2::Status::Ok => {}
            flate2::Status::BufError => {
                if d.total_in() as usize == data.len() {
                    return None; // truncated
                }
            }
        }
    }
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

    /// `gz` rebuilt from its description `r`: literal pieces copied, deflate pieces re-encoded
    /// from the plain text with their corrections.
    fn rebuild(gz: &[u8], r: &Rebuilt) -> Vec<u8> {
        let mut rebuilt = Vec::new();
        for p in &r.pieces {
            match p {
                Piece::Literal(range) => rebuilt.extend_from_slice(&gz[range.clone()]),
                Piece::Deflate {
                    plain,
                    stream,
                    codec,
                    corrections,
                } => rebuilt.extend(
                    dr::rebuild_with(
                        &r.plain[plain.clone()],
                        codec.0,
                        codec.1,
                        corrections,
                        stream.len() as u64,
                    )
                    .unwrap(),
                ),
            }
        }
        rebuilt
    }

    #[test]
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
        assert_eq!(rebuild(&gz, &r), gz);
        assert!(analyse(b"not gzip at all").is_none());
    }

    /// pigz output (every option the generator tells apart) is described by codec 2 encoder 2
    /// and rebuilt exactly; pigz must be installed.
    #[test]
    fn pigz_streams_are_recognised() {
        let mut text = Vec::new();
        let mut x = 5u32;
        while text.len() < 700_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match x >> 29 {
                0 => text.extend(std::iter::repeat_n(
                    0u8,
                    40_000 + (x >> 12) as usize % 200_000,
                )),
                1 => text.extend((0..200u32).map(|i| (x >> (i % 24)) as u8)),
                _ => text.extend(format!("file {} of {}\n", x % 977, x >> 22).into_bytes()),
            }
        }
        let cases: [(&[&str], &str); 4] = [
            (&["-9"], "pigz -9"),
            (&["-3", "-b", "32"], "pigz -3"),
            // Where pigz's rolling hash finds no hit within a job, --rsyncable cuts jobs on
            // the same grid as without it, and the fixed layout describes the stream too: the
            // label is checked up to the options both layouts share (tests/extended_pigz.rs
            // checks the --rsyncable layout on text with hits).
            (&["-6", "-i", "--rsyncable", "-b", "64"], "pigz -6 -i"),
            (&["-9", "--rsyncable", "-b", "256"], "pigz -9"),
        ];
        for (args, label) in cases {
            let mut child = std::process::Command::new("pigz")
                .args(args)
                .args(["-n", "-c"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("pigz is needed (apt-get install -y pigz)");
            let mut stdin = child.stdin.take().unwrap();
            let input = text.clone();
            let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
            let gz = child.wait_with_output().unwrap().stdout;
            writer.join().unwrap();
            let r = analyse(&gz).expect("describable");
            let how = rebuilt_by(&r.pieces);
            assert!(how.starts_with(label), "{args:?}: {how}");
            assert!(rebuild(&gz, &r) == gz, "{args:?}");
        }
    }
}
