#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/{npy,safetensors}/).

The files are built from the format descriptions with struct only (no NumPy needed): a few valid
files covering every dtype, order, version and byte order, and a few invalid ones close to
valid. Run from anywhere; the output is deterministic, so re-running changes nothing.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def npy(descr, fortran, shape, data, major=1, align=64):
    shape_repr = "(%s,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape_repr)
    prefix = 10 if major == 1 else 12
    pad = align - (prefix + len(header) + 1) % align
    header = (header + " " * pad + "\n").encode()
    length = struct.pack("<H" if major == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + length + header + data


def safetensors(tensors, metadata=None, pad=True):
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def write(kind, name, content):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)


def main():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    write("npy", "f4_c_v1.npy", npy("<f4", False, (2, 3), f32))
    write("npy", "f4_f_v2.npy", npy("<f4", True, (3, 2), f32, major=2))
    write("npy", "i1_v3.npy", npy("|i1", False, (4,), b"\x80\x7f\x00\x01", major=3))
    write("npy", "u1_scalar.npy", npy("|u1", False, (), b"\x2a"))
    write("npy", "i2_be.npy", npy(">i2", False, (2, 1), struct.pack(">2h", -2, 300)))
    write("npy", "i4_f_rank3.npy", npy("<i4", True, (2, 2, 2), struct.pack("<8i", *range(8))))
    write("npy", "f8_old16.npy", npy("<f8", False, (1,), struct.pack("<d", 0.5), align=16))
    write("npy", "f2.npy", npy("<f2", False, (3,), struct.pack("<3H", 0x3C00, 0x0001, 0x7E00)))
    write("npy", "i8_empty.npy", npy("<i8", False, (0, 5), b""))
    write("npy", "bad_truncated.npy", npy("<f4", False, (2, 3), f32)[:-3])
    write("npy", "bad_descr.npy", npy("<c8", False, (1,), b"\0" * 8))

    write("safetensors", "two.safetensors", safetensors(
        [("w", "F32", [2, 2], struct.pack("<4f", 1, -1, 0.5, 2)), ("b", "I8", [2], b"\x01\xff")],
        metadata={"format": "pt"}))
    write("safetensors", "half.safetensors", safetensors(
        [("h", "F16", [2], struct.pack("<2H", 0x3C00, 0x03FF)),
         ("bf", "BF16", [1, 1], struct.pack("<H", 0x3F80))]))
    write("safetensors", "ints.safetensors", safetensors(
        [("a", "U8", [3], b"\x00\x01\x02"), ("b", "I16", [1], struct.pack("<h", -5)),
         ("c", "I32", [], struct.pack("<i", 7)), ("d", "I64", [1], struct.pack("<q", -1)),
         ("e", "F64", [0, 3], b""), ("f", "F64", [1], struct.pack("<d", 3.5))]))
    write("safetensors", "escapes.safetensors", safetensors(
        [("caf\u00e9\n\"x\"", "U8", [1], b"\x05")], metadata={"k": "\U0001F600"}, pad=False))
    write("safetensors", "empty.safetensors", safetensors([]))
    good = safetensors([("w", "F32", [2], struct.pack("<2f", 1, 2))])
    write("safetensors", "bad_trailing.safetensors", good + b"\x00")
    write("safetensors", "bad_overlap.safetensors", struct.pack("<Q", 105) + (
        b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
        b'"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}') + b"\x00" * 3)


if __name__ == "__main__":
    main()
