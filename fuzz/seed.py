#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets from tests/vectors (run from anywhere).

Usage: seed.py [OUTPUT_DIR]   (default: fuzz/corpus; scripts/fuzz-smoke.sh passes a fresh one)
The seeds depend only on tests/vectors (and the zlib behind Python), so every run starts from the same corpus.

corpus/parse_delta, corpus/apply: every golden delta.
corpus/bspatch: every BSDIFF40 patch found inside a delta (from its magic to the end).
corpus/inflate: raw/gzip/zlib streams of vector targets, with the 4-byte selector header.
corpus/zstd: every zstd frame found inside a delta (from its magic), with the header.
corpus/deflate_reconstruct: the correction blob of each fixture delta in tests/fixtures/extended*
  with the plain text of the gzip member it rebuilds (from the fixture's target.swu).
corpus/pigz_blob: one-job pigz texts with fixed and explicit layouts.
corpus/zstd_reconstruct: one-block structures (a raw block; a compressed block with raw
  literals and predefined tables) of a small text, with its frame length.
"""
import gzip
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def occurrences(data, magic):
    i = data.find(magic)
    while i >= 0:
        yield i
        i = data.find(magic, i + 1)


for case in sorted(os.listdir(VECTORS)):
    delta_path = os.path.join(VECTORS, case, "delta")
    if not os.path.isfile(delta_path):
        continue
    delta = open(delta_path, "rb").read()
    put("parse_delta", delta)
    if len(delta) <= 1 << 20:
        put("apply", delta)
    for i in occurrences(delta, b"BSDIFF40"):
        put("bspatch", delta[i:])
    for i in occurrences(delta, b"\x28\xb5\x2f\xfd"):
        for flag in (0, 1):
            put("zstd", bytes([flag]) + struct.pack("<I", 1 << 20)[:3] + delta[i:])
    target_path = os.path.join(VECTORS, case, "target")
    if os.path.isfile(target_path):
        plain = open(target_path, "rb").read()[: 64 * 1024]
        header = lambda init: bytes([init]) + struct.pack("<I", len(plain))[:3]
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)
        put("inflate", header(0) + raw.compress(plain) + raw.flush())
        put("inflate", header(1) + gzip.compress(plain, mtime=0))
        put("inflate", header(2) + zlib.compress(plain))

def newc(name, data, ino):
    name_b = name.encode() + b"\0"
    fields = [ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name_b
    head += b"\0" * ((4 - len(head) % 4) % 4)
    return head + data + b"\0" * ((4 - len(data) % 4) % 4)


swu = open(os.path.join(VECTORS, "swu_realistic_rootfs", "source"), "rb").read()
description = swu[128 : 128 + 551]
small = newc("sw-description", description, 1) + newc("rootfs.ext4.gz", b"\x1f\x8b" + b"x" * 98, 2)
small += newc("TRAILER!!!", b"", 0)
put("swu", small)
put("swu", small + b"\0" * 512)
put("swu", description)



def correction_blob(delta):
    """(codec selector, blob, plain length, deflate length) of the first blob in a delta."""
    i = delta.find(b"ADPF")
    if i >= 0:
        (count,) = struct.unpack(">I", delta[i + 4 : i + 8])
        pos, plain_len, deflate_len = i + 8, 0, 0
        for _ in range(count):
            p, d, c = struct.unpack(">QQQ", delta[pos : pos + 24])
            pos, plain_len, deflate_len = pos + 24 + c, plain_len + p, deflate_len + d
        return 0, delta[i:pos], plain_len, deflate_len
    i = delta.find(b"ADEX")
    if i >= 0:
        return 1, delta[i : i + 6], None, None
    return None


def gzip_members(swu):
    """(plain text, deflate length) of every gzip member in an SWU."""
    i = swu.find(b"\x1f\x8b\x08")
    while i >= 0:
        try:
            d = zlib.decompressobj(31)
            plain = d.decompress(swu[i:])
            if d.eof:
                yield plain, len(swu) - i - len(d.unused_data) - 18
        except zlib.error:
            pass
        i = swu.find(b"\x1f\x8b\x08", i + 1)


FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
for case in sorted(os.listdir(FIXTURES)):
    if not case.startswith("extended"):
        continue
    delta = open(os.path.join(FIXTURES, case, "delta"), "rb").read()
    found = correction_blob(delta)
    if found is None:
        continue
    selector, blob, plain_len, deflate_len = found
    target = open(os.path.join(FIXTURES, case, "target.swu"), "rb").read()
    for plain, length in gzip_members(target):
        if selector == 1:
            # Codec 2 re-encodes any text: a prefix of the member's (its deflate length is
            # then only approximate, which the target does not check for codec 2).
            plain = plain[:60000]
            raw = zlib.compressobj(9, zlib.DEFLATED, -15)
            length = len(raw.compress(plain) + raw.flush())
        elif len(plain) >= 1 << 16 or (plain_len, deflate_len) != (len(plain), length):
            continue
        head = bytes([selector]) + struct.pack("<H", len(plain)) + struct.pack("<I", length)[:3]
        put("deflate_reconstruct", head + plain + blob)


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


# pigz_blob: one-job texts (a single pigz job is zlib's raw deflate at memLevel 8), with the
# fixed layout and with an explicit one-piece layout, on 0 and 2 threads.
for level in (1, 6, 9):
    plain = b"".join(b"pigz job %d\n" % (i % 97) for i in range(2500))[:30000]
    raw = zlib.compressobj(level, zlib.DEFLATED, -15, 8)
    length = len(raw.compress(plain) + raw.flush())
    head = struct.pack("<H", len(plain)) + struct.pack("<I", length)[:3]
    fixed = b"ADEX\x02" + bytes([level, 0]) + varint(32768)
    explicit = b"ADEX\x02" + bytes([level, 2]) + varint(32768) + varint(1) + varint(len(plain) * 2 + 1)
    put("pigz_blob", head + bytes([level % 3]) + plain + fixed)
    put("pigz_blob", head + bytes([2]) + plain + explicit)

# zstd_reconstruct: level-3 parameters for a 200-byte content, one-shot, a single-segment
# frame with a 1-byte content size; one raw block (its frame length is known: 4 + 2 + 3 + 200),
# and one compressed block (raw literals, predefined tables; the frame length is a guess).
text = b"".join(b"zstd block %d " % (i % 7) for i in range(40))[:200]
params = bytes([14, 8, 8, 4, 0, 0x20, 0, 1])
raw = params + bytes([0]) + varint(len(text))
compressed = params + bytes([2]) + varint(len(text)) + bytes([0x04, 0x05, 0, 0, 0])
for blob, frame_len in ((raw, 4 + 2 + 3 + len(text)), (compressed, 60)):
    put("zstd_reconstruct", struct.pack("<H", len(text)) + struct.pack("<I", frame_len)[:3] + text + blob)

for target in ("parse_delta", "apply", "bspatch", "inflate", "zstd", "swu", "deflate_reconstruct", "pigz_blob", "zstd_reconstruct"):
    d = os.path.join(OUT, target)
    print(target, len(os.listdir(d)) if os.path.isdir(d) else 0, "seeds")
