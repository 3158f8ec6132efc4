#!/usr/bin/env python3
"""Write small seed inputs for the fuzz targets (fuzz/fuzz_targets) into DIR/<target>/.

Usage: scripts/fuzz/seeds.py DIR [SHARED_DATA]
Every seed is a well-formed file of its format, a few hundred bytes at most, except the
AEDAT 4 one, cut from SHARED_DATA/tonic-samples/sample.aedat4 when it is there.
"""
import gzip, io, json, os, struct, sys, zipfile

import numpy as np
from PIL import Image

out = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else None


def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(1)
n = 12
x = rng.integers(0, 34, n)
y = rng.integers(0, 34, n)
t = np.sort(rng.integers(0, 100000, n))
p = rng.integers(0, 2, n)

# N-MNIST: x, y, then 24 bits: polarity in the top bit, 23-bit timestamp.
put("nmnist", "events.bin", b"".join(
    bytes([x[i], y[i], (p[i] << 7) | (t[i] >> 16), (t[i] >> 8) & 255, t[i] & 255]) for i in range(n)))

# AEDAT 2.0 DVS128: big-endian address (x bits 1-7, y bits 8-14, polarity bit 0), timestamp.
hdr2 = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"
put("aedat", "dvs128-v2.aedat", hdr2 + b"".join(
    struct.pack(">Ii", (y[i] << 8) | (x[i] << 1) | p[i], t[i]) for i in range(n)))
hdr2d = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n"
put("aedat", "davis-v2.aedat", hdr2d + b"".join(
    struct.pack(">Ii", (y[i] << 22) | (x[i] << 12) | (p[i] << 11), t[i]) for i in range(n)))
# AEDAT 3.1: one polarity packet (28-byte header, 8-byte events).
hdr3 = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
body = b"".join(struct.pack("<II", (x[i] << 17) | (y[i] << 2) | (p[i] << 1) | 1, t[i]) for i in range(n))
put("aedat", "v31.aedat", hdr3 + struct.pack("<HHIIIIII", 1, 1, 8, 4, 0, n, n, n) + body)

# numpy: a tonic-style structured array and an [N, 4] array.
ev = np.zeros(n, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "u1")])
ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
buf = io.BytesIO(); np.save(buf, ev); put("npy", "structured.npy", buf.getvalue())
buf = io.BytesIO(); np.save(buf, np.stack([x, y, t, p], 1).astype("<i4")); put("npy", "n4.npy", buf.getvalue())
# npz: SpikingJelly's x, y, t, p members, deflated and stored; one structured member.
buf = io.BytesIO(); np.savez_compressed(buf, x=x.astype("<u2"), y=y.astype("<u2"), t=t, p=p.astype("u1"))
put("npz", "spikingjelly.npz", buf.getvalue())
buf = io.BytesIO(); np.savez(buf, events=ev); put("npz", "structured.npz", buf.getvalue())

# IDX: 3 images of 4x4 and their labels, plain and gzipped.
img = struct.pack(">IIII", 0x803, 3, 4, 4) + bytes(rng.integers(0, 256, 48).astype(np.uint8))
lab = struct.pack(">II", 0x801, 3) + bytes([7, 2, 1])
put("idx", "images-idx3-ubyte", img)
put("idx", "images-idx3-ubyte.gz", gzip.compress(img, mtime=0))
put("idx", "labels-idx1-ubyte.gz", gzip.compress(lab, mtime=0))

# CIFAR: one CIFAR-10 record (label, 3072 pixels); one CIFAR-100 record (coarse, fine).
pix = bytes(rng.integers(0, 256, 3072).astype(np.uint8))
put("cifar", "cifar10.bin", bytes([3]) + pix)
put("cifar", "cifar100.bin", bytes([1, 42]) + pix)

# Images: 5x3 pictures in every format the decoder takes.
pic = Image.fromarray(rng.integers(0, 256, (3, 5, 3)).astype(np.uint8))
for fmt, mode in [("png", "RGB"), ("png", "L"), ("jpeg", "RGB"), ("bmp", "RGB"), ("gif", "P"), ("webp", "RGB")]:
    buf = io.BytesIO(); pic.convert(mode).save(buf, fmt.upper()); put("image", f"{mode}.{fmt}", buf.getvalue())

# Checkpoint: a small safetensors with a config, normalization and tensors of each dtype.
config = {"arch": "spiking-vgg", "depth": 1, "dim": 8, "heads": 1, "mlp_ratio": 1, "time_steps": 4,
          "in_channels": 1, "image_size": 8, "patch_size": 1, "classes": 10, "attention": "ssa",
          "weights": "float", "weight_bits": 4, "channels": [8], "pool_after": [0]}
tensors = [("conv.0.weight", "F32", [2, 2], np.ones(4, "<f4").tobytes()),
           ("head.bias", "F16", [3], np.ones(3, "<f2").tobytes()),
           ("bn.num_batches_tracked", "I64", [], struct.pack("<q", 5)),
           ("packed", "U32", [1, 4], bytes(16))]
header, data = {}, b""
for name, dtype, shape, raw in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
header["__metadata__"] = {"bitspike.config": json.dumps(config),
                          "bitspike.packed": json.dumps({"packed": [1, 3, 3, 3]}),
                          "data.normalization": json.dumps({"mean": [0.5], "std": [0.25]})}
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
put("checkpoint", "small.safetensors", struct.pack("<Q", len(h)) + h + data)

# AEDAT 4: the sample's IOHeader and its first packets, up to 6 KB.
if shared and os.path.exists(os.path.join(shared, "tonic-samples/sample.aedat4")):
    raw = open(os.path.join(shared, "tonic-samples/sample.aedat4"), "rb").read()
    pos = 14 + 4 + struct.unpack("<I", raw[14:18])[0]
    while pos + 8 <= len(raw):
        size = struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if pos + 8 + size > 6000:
            break
        pos += 8 + size
    put("aedat4", "sample-head.aedat4", raw[:pos])
