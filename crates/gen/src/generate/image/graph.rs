//! The recipe graph under construction: nodes with the bytes they stand for, so that each
//! node's length and SHA-256 are known and reference windows can be materialised while planning.

use sha2::{Digest, Sha256};

use super::{Graph, Node, NodeId, NodeKind};
use crate::generate::gzrebuild::Piece;

/// Where a node's bytes come from, for hashing and for materialising windows at generation time.
pub(super) enum Content<'a> {
    /// Bytes of the basis or the target image.
    Borrowed(&'a [u8]),
    /// Bytes held here (stream contents, decoded texts, gzip files).
    Owned(std::sync::Arc<Vec<u8>>),
    /// This many zero bytes.
    Zeros(u64),
    /// The concatenation of these nodes.
    Parts(Vec<NodeId>),
    /// `(node, offset, length)`: a range of another node.
    Slice(NodeId, u64, u64),
}

#[derive(Default)]
pub(super) struct Builder<'a> {
    /// The nodes so far.
    pub(super) graph: Graph,
    /// Per node, where its bytes come from.
    contents: Vec<Content<'a>>,
}

impl<'a> Builder<'a> {
    /// Adds a node made by `kind` whose bytes are `content`; returns its id.
    pub(super) fn add(&mut self, kind: NodeKind, content: Content<'a>) -> NodeId {
        let len = self.content_len(&content);
        let mut h = Sha256::new();
        self.feed(&content, 0, len, &mut |b| h.update(b));
        self.graph.nodes.push(Node {
            kind,
            len,
            sha256: h.finalize().into(),
        });
        self.contents.push(content);
        self.graph.nodes.len() - 1
    }

    /// Length of `c` in bytes.
    fn content_len(&self, c: &Content<'a>) -> u64 {
        match c {
            Content::Borrowed(b) => b.len() as u64,
            Content::Owned(v) => v.len() as u64,
            Content::Zeros(n) => *n,
            Content::Parts(p) => p.iter().map(|&i| self.graph.nodes[i].len).sum(),
            Content::Slice(_, _, len) => *len,
        }
    }

    /// Calls `out` with the bytes `[from, from + len)` of `c`, in order.
    fn feed(&self, c: &Content<'a>, from: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        if len == 0 {
            return;
        }
        let (a, b) = (from as usize, (from + len) as usize);
        match c {
            Content::Borrowed(x) => out(&x[a..b]),
            Content::Owned(v) => out(&v[a..b]),
            Content::Zeros(_) => {
                let zeros = [0u8; 65536];
                let mut left = len as usize;
                while left > 0 {
                    let n = left.min(zeros.len());
                    out(&zeros[..n]);
                    left -= n;
                }
            }
            Content::Parts(parts) => {
                let mut pos = 0u64;
                for &p in parts {
                    let plen = self.graph.nodes[p].len;
                    let lo = from.max(pos);
                    let hi = (from + len).min(pos + plen);
                    if lo < hi {
                        self.feed(&self.contents[p], lo - pos, hi - lo, out);
                    }
                    pos += plen;
                }
            }
            Content::Slice(whole, off, _) => {
                self.feed(&self.contents[*whole], off + from, len, out)
            }
        }
    }

    /// The bytes of node `id`.
    pub(super) fn bytes(&self, id: NodeId) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.graph.nodes[id].len as usize);
        self.feed(&self.contents[id], 0, self.graph.nodes[id].len, &mut |b| {
            v.extend_from_slice(b)
        });
        v
    }

    /// A node of bytes `[offset, offset + len)` of the basis `s`.
    pub(super) fn basis(&mut self, s: &'a [u8], offset: u64, len: u64) -> NodeId {
        let bytes = &s[offset as usize..(offset + len) as usize];
        self.add(NodeKind::Basis { offset }, Content::Borrowed(bytes))
    }

    /// The concatenation of the non-empty `parts` (the part itself when only one is left,
    /// `None` when none is).
    pub(super) fn chain(&mut self, parts: Vec<NodeId>) -> Option<NodeId> {
        let parts: Vec<NodeId> = parts
            .into_iter()
            .filter(|&p| self.graph.nodes[p].len > 0)
            .collect();
        match parts.len() {
            0 => None,
            1 => Some(parts[0]),
            _ => Some(self.add(NodeKind::Chain(parts.clone()), Content::Parts(parts))),
        }
    }

    /// Bytes `[offset, offset + len)` of node `whole` (`whole` itself when that is all of it).
    pub(super) fn slice(&mut self, whole: NodeId, offset: u64, len: u64) -> NodeId {
        if offset == 0 && len == self.graph.nodes[whole].len {
            return whole;
        }
        self.add(
            NodeKind::Slice { whole, offset },
            Content::Slice(whole, offset, len),
        )
    }
}

/// The node of a gzip file rebuilt piece by piece from its text node `raw`.
pub(super) fn rebuilt_file(
    g: &mut Builder<'_>,
    raw: NodeId,
    bytes: &[u8],
    pieces: &[Piece],
) -> NodeId {
    let mut parts = Vec::new();
    for piece in pieces {
        let node = match piece {
            Piece::Literal(range) => {
                let b = bytes[range.clone()].to_vec();
                g.add(
                    NodeKind::Literal { bytes: b.clone() },
                    Content::Owned(std::sync::Arc::new(b)),
                )
            }
            Piece::Deflate {
                plain,
                stream,
                codec,
                corrections,
            } => {
                let plain = g.slice(raw, plain.start as u64, plain.len() as u64);
                g.add(
                    NodeKind::Reconstruct {
                        plain,
                        codec: *codec,
                        corrections: corrections.clone(),
                    },
                    Content::Owned(std::sync::Arc::new(bytes[stream.clone()].to_vec())),
                )
            }
        };
        parts.push(node);
    }
    g.chain(parts).expect("a gzip file has bytes")
}
