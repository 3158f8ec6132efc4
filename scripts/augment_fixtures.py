"""Write tests/fixtures/augment/pil_timm.json: what PIL, torchvision and timm make of two
small odd-sized images (13x11 RGB, 9x7 grey) under each augmentation op at fixed
parameters, and timm's magnitude-to-argument numbers. The Rust tests in
src/data/augment/ compare against it.

Dev-only: the crate and its tests never run Python. Regenerate with
    pip install timm   # with torch, torchvision and Pillow
    python3 scripts/augment_fixtures.py
"""
import json
import pathlib

import numpy as np
import PIL
import timm
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from timm.data import auto_augment as aa

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/augment/pil_timm.json"
FILL_RGB = (124, 116, 104)  # timm's img_mean for the ImageNet mean
FILL_L = 124
BILINEAR = Image.Resampling.BILINEAR


def test_images():
    """Smooth gradients plus noise, so that both the histogram ops and the filters see
    structure; the grey one keeps a few extreme pixels."""
    rs = np.random.RandomState(7)
    h, w = 11, 13
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 15 + 30, yy * 18 + 20, 200 - xx * 7 - yy * 6], axis=-1)
    rgb = np.clip(rgb + rs.randint(-25, 26, size=rgb.shape), 0, 255).astype(np.uint8)
    gh, gw = 7, 9
    grey = np.clip(rs.randint(40, 200, size=(gh, gw)), 0, 255).astype(np.uint8)
    grey[0, 0], grey[3, 4] = 17, 231
    return Image.fromarray(rgb, "RGB"), Image.fromarray(grey, "L")


def planar(img):
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    return [int(v) for v in a.reshape(-1)]


def cases(img, fill):
    """(op, args, output) for each op the Rust side implements."""
    kw = dict(fillcolor=fill, resample=BILINEAR)
    out = []

    def add(op, args, result):
        out.append(dict(op=op, args=list(args), output=planar(result)))

    add("auto_contrast", [], aa.auto_contrast(img))
    add("equalize", [], aa.equalize(img))
    add("invert", [], aa.invert(img))
    # Pillow >= 11 refuses 0 bits, which timm's Posterize asks for at magnitudes
    # below 2.5 (and PosterizeIncreasing at 10); older Pillow's mask keeps no bit.
    add("posterize", [0], img.point([0] * 256 * len(img.getbands())))
    for bits in (1, 2, 4, 7):
        add("posterize", [bits], aa.posterize(img, bits))
    for thresh in (0, 100, 128, 256):
        add("solarize", [thresh], aa.solarize(img, thresh))
    for add_v in (0, 30, 110):
        add("solarize_add", [add_v], aa.solarize_add(img, add_v))
    for f in (0.1, 0.55, 1.0, 1.37, 1.9):
        add("color", [f], aa.color(img, f))
        add("contrast", [f], aa.contrast(img, f))
        add("brightness", [f], aa.brightness(img, f))
        add("sharpness", [f], aa.sharpness(img, f))
    for deg in (0.0, 17.3, -30.0, 9.0):
        add("rotate", [deg], aa.rotate(img, deg, **dict(kw)))
    for f in (0.3, -0.21, 0.07):
        add("shear_x", [f], aa.shear_x(img, f, **dict(kw)))
        add("shear_y", [f], aa.shear_y(img, f, **dict(kw)))
    for pct in (0.2, -0.45, 0.013):
        add("translate_x_rel", [pct], aa.translate_x_rel(img, pct, **dict(kw)))
        add("translate_y_rel", [pct], aa.translate_y_rel(img, pct, **dict(kw)))
    # torchvision ColorJitter's functional ops on PIL images.
    for f in (0.6, 1.4):
        add("adjust_brightness", [f], TF.adjust_brightness(img, f))
        add("adjust_contrast", [f], TF.adjust_contrast(img, f))
        add("adjust_saturation", [f], TF.adjust_saturation(img, f))
    for f in (0.1, -0.3, 0.5, -0.5, 0.02):
        add("adjust_hue", [f], TF.adjust_hue(img, f))
    # RandomResizedCrop's crop-and-resize (top, left, height, width, out_h, out_w).
    for box in ((2, 3, 5, 6, 5, 4), (0, 0, img.height, img.width, 16, 21), (1, 2, 5, 5, 5, 12),
                (0, 0, img.height, img.width, img.height, img.width), (3, 1, 4, 6, 3, 3)):
        t, l, h, w, oh, ow = box
        add("resized_crop", box, TF.resized_crop(img, t, l, h, w, [oh, ow], TF.InterpolationMode.BILINEAR))
    return out


def level_args():
    """timm's _LEVEL_TO_ARG for every RandAugment op, with the random negation off."""
    aa._randomly_negate = lambda v: v
    hparams = dict(aa._HPARAMS_DEFAULT)
    names = sorted(set(aa._RAND_TRANSFORMS) | set(aa._RAND_INCREASING_TRANSFORMS))
    rows = []
    for name in names:
        fn = aa.LEVEL_TO_ARG[name]
        for m in (0.0, 1.0, 2.5, 5.0, 7.0, 9.0, 10.0, 13.0):
            args = fn(m, hparams) if fn is not None else ()
            rows.append(dict(op=name, magnitude=m, args=[float(a) for a in args]))
    return rows


def main():
    rgb, grey = test_images()
    fixture = dict(
        versions=dict(pil=PIL.__version__, timm=timm.__version__, torchvision=torchvision.__version__),
        rand_transforms=aa._RAND_TRANSFORMS,
        rand_increasing_transforms=aa._RAND_INCREASING_TRANSFORMS,
        images=[
            dict(mode="RGB", channels=3, height=rgb.height, width=rgb.width, fill=list(FILL_RGB),
                 input=planar(rgb), cases=cases(rgb, FILL_RGB)),
            dict(mode="L", channels=1, height=grey.height, width=grey.width, fill=[FILL_L],
                 input=planar(grey), cases=cases(grey, FILL_L)),
        ],
        level_args=level_args(),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
