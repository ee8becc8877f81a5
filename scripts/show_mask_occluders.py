"""Contact sheet of the training occluders: ``python scripts/show_mask_occluders.py OUT.png``.

Rows are the kinds of ``d3dface.training.mask_occluders.TRAIN_KINDS``; each row has
6 examples on 128x128 face crops of different shared photos, each shown composited and,
next to it, its label (``alpha >= 0.5``) as a red tint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "engine"))

from d3dface.inputs.occluders import composite, load_textures  # noqa: E402
from d3dface.inputs.image_io import load_image  # noqa: E402
from d3dface.inputs.landmarks_base import detect_landmarks  # noqa: E402
from d3dface.paths import find_assets_dir  # noqa: E402
from d3dface.training.mask_occluders import TRAIN_KINDS, training_layer  # noqa: E402

SIZE = 128


def face_crop(image: np.ndarray, points68: np.ndarray, size: int = SIZE, margin: float = 3.2):
    """A size x size crop around the face (side = ``margin`` x the eye-corner distance) and its points."""
    p = np.asarray(points68, np.float64)
    iod = float(np.linalg.norm(p[45] - p[36]))
    side = margin * iod
    c = (p.min(0) + p.max(0)) / 2 - np.array([0.0, 0.04 * side])
    s = size / side
    M = np.array([[s, 0, size / 2 - s * c[0]], [0, s, size / 2 - s * c[1]]])
    crop = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, p @ M[:, :2].T + M[:, 2]


def load_faces(folder: Path):
    faces = []
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        img = load_image(f)
        try:
            lm = detect_landmarks(img, "mediapipe")
        except Exception as e:  # noqa: BLE001 - a photo without a face is skipped
            print(f"skip {f.name}: {e}")
            continue
        faces.append((f.name, *face_crop(img, lm.points68)))
    return faces


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--kinds", default=",".join(TRAIN_KINDS))
    ap.add_argument("--no-textures", action="store_true")
    ap.add_argument("--scale", type=int, default=1, help="upscale the sheet by this factor")
    args = ap.parse_args(argv)
    images = find_assets_dir(required=False)
    images = (images.parent / "images") if images is not None else REPO.parent / "shared" / "images"
    faces = load_faces(images / "faces")
    if not faces:
        print("no faces found", file=sys.stderr)
        return 1
    textures = [] if args.no_textures else load_textures(images / "backgrounds")
    kinds = [k for k in args.kinds.split(",") if k]
    pad, label_w = 4, 92
    cell = 2 * SIZE + pad
    sheet = np.full((len(kinds) * (SIZE + pad) + pad, label_w + args.cols * (cell + pad) + pad, 3), 255, np.uint8)
    for r, kind in enumerate(kinds):
        y = pad + r * (SIZE + pad)
        cv2.putText(sheet, kind, (4, y + SIZE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        for c in range(args.cols):
            name, img, pts = faces[(c + r) % len(faces)]
            rng = np.random.default_rng([args.seed, r, c])
            layer = training_layer(img, pts, kind, rng, textures)
            occ = composite(img, layer).image
            lab = layer.alpha >= 0.5
            tint = img.copy().astype(np.float32)
            tint[lab] = tint[lab] * 0.4 + np.array([255, 0, 0]) * 0.6
            x = label_w + pad + c * (cell + pad)
            sheet[y:y + SIZE, x:x + SIZE] = occ
            sheet[y:y + SIZE, x + SIZE + pad:x + cell] = tint.astype(np.uint8)
    if args.scale > 1:
        sheet = cv2.resize(sheet, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
