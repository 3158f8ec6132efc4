#!/usr/bin/env python3
"""Write a teacher's logits for every training image, for `bitspike train --teacher-logits`.

Any timm or torchvision classifier serves as the teacher (e.g. a ViT-B/16 fine-tuned on
the dataset, as the BESTformer authors used). The images are read in the order bitspike
reads the training split, un-augmented, resized to the teacher's input size:

  - image folders: train/<class>/<file>, classes and files in sorted order, files with
    the extensions png, jpg, jpeg, bmp, gif, webp (any case);
  - CIFAR-10 binary (data_batch_1..5.bin) and CIFAR-100 binary (train.bin), record order;
  - MNIST-style IDX (train-images-idx3-ubyte[.gz]), record order.

The output is a safetensors file with `logits` [N, classes] (float32) and `labels` [N]
(int64), which bitspike checks against the dataset's own labels.

Examples:
  python3 scripts/teacher_logits.py --data cifar10-jpg --model timm:vit_base_patch16_224 \\
      --num-classes 10 --checkpoint vit_b16_cifar10.pth --img-size 224 --out teacher.safetensors
  python3 scripts/teacher_logits.py --data cifar10-jpg --model torchvision:resnet18 \\
      --num-classes 10 --checkpoint resnet18_cifar10.pth --img-size 32 --out teacher.safetensors

Needs: pip install torch torchvision safetensors pillow (and timm for timm models).
"""

import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def folder_split(root):
    """(list of PIL loaders, labels) of root/train in bitspike's order."""
    train = os.path.join(root, "train")
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    items = []
    for label, name in enumerate(classes):
        class_dir = os.path.join(train, name)
        for f in sorted(os.listdir(class_dir)):
            if os.path.splitext(f)[1].lower() in EXTENSIONS:
                items.append((os.path.join(class_dir, f), label))
    images = [lambda p=p: Image.open(p).convert("RGB") for p, _ in items]
    return images, [label for _, label in items]


def cifar_split(root):
    for d in [root, os.path.join(root, "cifar-10-batches-bin"), os.path.join(root, "cifar-100-binary")]:
        batches = [os.path.join(d, f"data_batch_{i}.bin") for i in range(1, 6)]
        batches = [b for b in batches if os.path.isfile(b)]
        label_bytes = 1
        if not batches and os.path.isfile(os.path.join(d, "train.bin")):
            batches, label_bytes = [os.path.join(d, "train.bin")], 2
        if batches:
            raw = np.concatenate([np.fromfile(b, dtype=np.uint8) for b in batches])
            records = raw.reshape(-1, label_bytes + 3072)
            labels = records[:, label_bytes - 1].astype(np.int64).tolist()
            pixels = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return [lambda a=a: Image.fromarray(a, "RGB") for a in pixels], labels
    return None


def idx_split(root):
    def read(name):
        for n in (name, name + ".gz"):
            p = os.path.join(root, n)
            if os.path.isfile(p):
                with (gzip.open(p) if p.endswith(".gz") else open(p, "rb")) as f:
                    return f.read()
        return None

    images, labels = read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    n, rows, cols = struct.unpack(">III", images[4:16])
    pixels = np.frombuffer(images[16:], dtype=np.uint8).reshape(n, rows, cols)
    y = np.frombuffer(labels[8:], dtype=np.uint8).astype(np.int64).tolist()
    return [lambda a=a: Image.fromarray(a, "L").convert("RGB") for a in pixels], y


def open_split(root):
    for reader in (idx_split, cifar_split):
        split = reader(root)
        if split is not None:
            return split
    if os.path.isdir(os.path.join(root, "train")):
        return folder_split(root)
    sys.exit(f"{root}: no IDX files, CIFAR binary batches or train/<class>/ folders found")


def build_model(spec, num_classes, checkpoint):
    kind, _, name = spec.partition(":")
    if kind == "timm":
        import timm

        model = timm.create_model(name, pretrained=checkpoint is None, num_classes=num_classes)
        cfg = model.pretrained_cfg
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
    elif kind == "torchvision":
        import torchvision

        weights = None if checkpoint else "DEFAULT"
        model = torchvision.models.get_model(name, weights=weights, num_classes=num_classes)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    else:
        sys.exit(f"--model {spec}: expected timm:NAME or torchvision:NAME")
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu")
        state = state.get("state_dict", state.get("model", state))
        model.load_state_dict(state)
    return model.eval(), mean, std


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the dataset directory bitspike trains on")
    ap.add_argument("--model", required=True, help="timm:NAME or torchvision:NAME")
    ap.add_argument("--num-classes", type=int, required=True)
    ap.add_argument("--checkpoint", help="the teacher's weights (a state dict) for this dataset")
    ap.add_argument("--img-size", type=int, default=224, help="the teacher's input size")
    ap.add_argument("--mean", type=float, nargs=3, help="override the teacher's normalization")
    ap.add_argument("--std", type=float, nargs=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", required=True, help="output .safetensors")
    args = ap.parse_args()

    images, labels = open_split(args.data)
    model, mean, std = build_model(args.model, args.num_classes, args.checkpoint)
    mean, std = args.mean or mean, args.std or std
    model = model.to(args.device)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1).to(args.device)
    std_t = torch.tensor(std).view(1, 3, 1, 1).to(args.device)

    def tensor(img):
        img = img.resize((args.img_size, args.img_size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)

    out = []
    with torch.no_grad():
        for start in range(0, len(images), args.batch_size):
            batch = torch.stack([tensor(load()) for load in images[start:start + args.batch_size]])
            x = (batch.to(args.device) - mean_t) / std_t
            out.append(model(x).float().cpu())
            print(f"\r{start + len(batch)}/{len(images)} images", end="", file=sys.stderr)
    print(file=sys.stderr)
    logits = torch.cat(out)
    if logits.shape[1] != args.num_classes:
        sys.exit(f"the teacher gives {logits.shape[1]} logits, not --num-classes {args.num_classes}")
    accuracy = (logits.argmax(1) == torch.tensor(labels)).float().mean().item()
    tmp = args.out + ".tmp"
    save_file(
        {"logits": logits.contiguous(), "labels": torch.tensor(labels, dtype=torch.int64)},
        tmp,
        metadata={"teacher": args.model, "data": os.path.abspath(args.data), "images": str(len(labels))},
    )
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(labels)} x {args.num_classes} logits; teacher train accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
