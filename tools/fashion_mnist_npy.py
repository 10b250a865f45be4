#!/usr/bin/env python3
"""Converts Debian's dataset-fashion-mnist (IDX files, gzipped) to float32 .npy files
that `sextant import` and bench/bench_import read: <out>/fashion-train.npy (60000 x
784) and <out>/fashion-test.npy (10000 x 784), pixel values 0..255 as float32.
Standard library only.

Usage: tools/fashion_mnist_npy.py [OUT_DIR] [--src /usr/share/datasets/fashion-mnist]
"""
import array
import gzip
import os
import struct
import sys


def idx_images(path):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803:
            sys.exit(f"{path}: magic {magic:#x} is not an IDX image file (0x803)")
        data = f.read(n * rows * cols)
    if len(data) != n * rows * cols:
        sys.exit(f"{path}: {len(data)} bytes of pixels, the header says {n * rows * cols}")
    return n, rows * cols, data


def write_npy(path, n, dim, pixels):
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, dim)
    pad = 64 - (10 + len(d) + 1) % 64
    hdr = (d + " " * pad + "\n").encode()
    floats = array.array("f", list(pixels))  # 0..255, exact in float32 (not frombytes)
    if sys.byteorder != "little":
        floats.byteswap()
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr)
        floats.tofile(f)
    os.replace(tmp, path)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--src")]
    src = "/usr/share/datasets/fashion-mnist"
    for a in sys.argv[1:]:
        if a.startswith("--src="):
            src = a.split("=", 1)[1]
    out = args[0] if args else "."
    os.makedirs(out, exist_ok=True)
    for name, idx in (("fashion-train", "train-images-idx3-ubyte.gz"), ("fashion-test", "t10k-images-idx3-ubyte.gz")):
        n, dim, px = idx_images(os.path.join(src, idx))
        path = os.path.join(out, name + ".npy")
        write_npy(path, n, dim, px)
        print(f"{path}: {n} x {dim} float32")


if __name__ == "__main__":
    main()
