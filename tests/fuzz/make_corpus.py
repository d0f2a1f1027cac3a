#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/{npy,safetensors,quantize,prune}/).

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


def quantize_case(op, prefix, spec, rank_axis, extents, group, encoding, values):
    """A fuzz_quantize input: operation byte, the operation's own option bytes, then the case
    (spec byte, rank / axis byte, one byte per extent, group size byte, value encoding, values)."""
    return bytes([op]) + prefix + bytes([spec, rank_axis] + extents + [group, encoding]) + values


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

    # fuzz_quantize. Spec byte: bits index into (2..8, 16) | 8 symmetric | 16 narrow range |
    # granularity << 5 | 128 round half to even. Rank / axis byte: (rank - 1) | (axis + rank) << 2.
    # Extent bytes hold extent - 1. Encoding 0: raw float32 values; 1: (int8 mantissa,
    # exponent + 150) byte pairs; 2: one byte each, an index into fuzz::edge_value.
    ramp = struct.pack("<8f", -1.5, -0.75, 0, 0.25, 0.5, 1, 2.5, 3)
    write("quantize", "int8_affine_per_tensor", quantize_case(0, b"", 6, 0, [7], 0, 0, ramp))
    write("quantize", "int4_sym_per_group", quantize_case(0, b"", 2 | 8 | 16 | 64, 1 | 3 << 2,
                                                          [1, 3], 1, 0, ramp))
    write("quantize", "int16_per_channel_half_even", quantize_case(
        0, b"", 7 | 32 | 128, 1 | 2 << 2, [2, 1], 0, 1,
        bytes([3, 149, 253, 120, 1, 20, 127, 60, 128, 10, 5, 0])))
    write("quantize", "edges_near_flt_max", quantize_case(0, b"", 6, 0, [3], 0, 2,
                                                          bytes([5, 6, 10, 0])))
    write("quantize", "nan", quantize_case(0, b"", 6, 0, [1], 0, 2, bytes([1, 14])))
    write("quantize", "mse_int4", quantize_case(1, bytes([40, 127]), 2 | 8, 0, [7], 0, 0, ramp))
    write("quantize", "bias_per_channel", quantize_case(
        2, bytes([1, 1, 100]), 6 | 8 | 16 | 32, 1 | 2 << 2, [1, 3], 0, 1,
        bytes([1, 100, 2, 100, 3, 100, 4, 100, 5, 100, 6, 100, 7, 100, 8, 100]) +
        bytes([1, 100, 160, 1, 140])))
    write("quantize", "bias_per_group_dead_row", quantize_case(
        2, bytes([1, 1, 120]), 2 | 8 | 16 | 64, 1 | 3 << 2, [1, 3], 1, 1,
        bytes([1, 100, 2, 100, 3, 100, 4, 100, 1, 20, 1, 20, 1, 20, 1, 20]) +
        bytes([1, 1, 120, 100, 130])))
    write("quantize", "observer_percentile", quantize_case(
        3, bytes([2, 200, 2]), 6, 0, [7], 0, 0, ramp) + bytes([0]) + ramp)
    write("quantize", "observer_entropy", quantize_case(3, bytes([3, 1, 1]), 6, 0, [7], 0, 0, ramp))
    write("quantize", "observer_minmax_merge", quantize_case(
        3, bytes([0, 0, 3]), 6 | 32, 1 | 2 << 2, [1, 3], 0, 0, ramp) + bytes([2]) +
        bytes([7, 8, 9, 10, 11, 12, 13, 3, 7, 8, 9, 10, 11, 12, 13, 3, 0, 1, 2, 3, 4, 5, 6, 7]))
    # fuzz_prune: operation (0 magnitude, 1 global, 2 N:M, 3 block, 4 structured), value
    # encoding (as above), rank - 1, the extents, a sparsity byte (b / 253), an exponent byte
    # (e + 40, for encoding 1), the values, then the operation's own bytes.
    ints = bytes([3, 250, 7, 0, 7, 249, 1, 2, 2, 5, 251, 6, 0, 0, 4, 253])  # 16 int8, ties
    write("prune", "magnitude_ties", bytes([0, 1, 1, 4, 4, 127, 40]) + ints)
    write("prune", "global_three_parts", bytes([1, 1, 0, 16, 190, 40]) + ints + bytes([2]))
    write("prune", "nm_2_4_tail", bytes([2, 1, 1, 2, 8, 0, 40]) + ints + bytes([3, 2]))
    write("prune", "block_2x4_max", bytes([3, 1, 1, 4, 4, 127, 40]) + ints + bytes([1, 3, 1]))
    write("prune", "structured_l2_axis_last", bytes([4, 1, 1, 4, 4, 127, 40]) + ints +
          bytes([3, 1]))
    write("prune", "structured_fpgm_raw", bytes([4, 0, 1, 2, 2, 127, 0]) +
          struct.pack("<4f", 0.5, -1.0, 2.0, 0.25) + bytes([0, 2]))
    write("prune", "nan_weight", bytes([0, 2, 0, 3, 100, 0, 7, 14, 8]))
    write("prune", "empty_tensor", bytes([4, 1, 1, 0, 3, 100, 40]))
    write("quantize", "multiplier", bytes([4]) + struct.pack("<d", 0.0012345) + bytes([1]) +
          bytes([1, 120, 1, 125, 1, 2, 3, 118, 5, 119]))


if __name__ == "__main__":
    main()
