#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets from tests/vectors (run from anywhere).

Usage: seed.py [OUTPUT_DIR]   (default: fuzz/corpus; scripts/fuzz-smoke.sh passes a fresh one)
The seeds depend only on tests/vectors (and the zlib behind Python), so every run starts from the same corpus.

corpus/parse_delta, corpus/apply: every golden delta.
corpus/bspatch: every BSDIFF40 patch found inside a delta (from its magic to the end).
corpus/inflate: raw/gzip/zlib streams of vector targets, with the 4-byte selector header.
corpus/zstd: every zstd frame found inside a delta (from its magic), with the header.
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

for target in ("parse_delta", "apply", "bspatch", "inflate", "zstd", "swu"):
    d = os.path.join(OUT, target)
    print(target, len(os.listdir(d)) if os.path.isdir(d) else 0, "seeds")
