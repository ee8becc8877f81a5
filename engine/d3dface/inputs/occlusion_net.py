"""A small occlusion-segmentation network on an aligned face crop ("net" auto mask).

The crop: a similarity transform puts five points from the 68 landmarks (eye centres,
nose tip, mouth corners) onto a fixed template in a ``CROP`` x ``CROP`` square, about
34 px between the eye centres, forehead to chin inside. The network reads that crop
(RGB normalised per crop, plus two coordinate channels, since the crop is aligned) and
returns, per crop pixel, the probability that an occluder hides the face there; the
probability is warped back to the photo. It is a 4-level U-Net (~0.5 M parameters),
trained here on composites (``d3dface train-occlusion-net``; ``data/OCCLUSION_NET_CARD.md``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import ModelFileError
from ..paths import DATA_DIR

CROP = 128                                   # px, side of the aligned crop
CHANNELS = (16, 32, 64, 96)                  # U-Net widths, finest to coarsest
# template (x, y) in crop px of: right eye centre, left eye centre, nose tip, mouth corners
TEMPLATE5 = np.array([[47.0, 52.0], [81.0, 52.0], [64.0, 72.0], [50.5, 92.0], [77.5, 92.0]], np.float32)
SHIPPED_NET = DATA_DIR / "occlusion_net.pt"


def five_points(points68: np.ndarray) -> np.ndarray:
    """(5, 2) eye centres, nose tip, mouth corners from iBUG-68 points (x, y) px."""
    p = np.asarray(points68, np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


def crop_transform(points68: np.ndarray) -> np.ndarray:
    """(2, 3) similarity (image px -> crop px) taking the five points onto ``TEMPLATE5`` (least squares)."""
    src = five_points(points68).astype(np.float64)
    dst = TEMPLATE5.astype(np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    # complex least squares: d = z s with z = a + ib (rotation and scale)
    a = (s0 * d0).sum() / max((s0 ** 2).sum(), 1e-12)
    b = (s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]).sum() / max((s0 ** 2).sum(), 1e-12)
    R = np.array([[a, -b], [b, a]])
    t = md - R @ ms
    return np.concatenate([R, t[:, None]], 1).astype(np.float32)


def warp_to_crop(image: np.ndarray, A: np.ndarray, size: int = CROP, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.warpAffine(image, A, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp_from_crop(crop: np.ndarray, A: np.ndarray, shape_hw) -> np.ndarray:
    """A crop-space map (CROP, CROP) float32 back to the photo (H, W); 0 outside the crop."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    return cv2.warpAffine(crop.astype(np.float32), A, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def network_input(crops: np.ndarray) -> torch.Tensor:
    """(N, CROP, CROP, 3) uint8 RGB crops -> (N, 5, CROP, CROP) float32: RGB normalised per crop and channel, x, y."""
    x = torch.as_tensor(np.ascontiguousarray(crops)).float().permute(0, 3, 1, 2) / 255.0
    mean = x.mean((2, 3), keepdim=True)
    std = x.std((2, 3), keepdim=True).clamp_min(0.02)
    x = (x - mean) / std
    n, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    coords = torch.stack([xx, yy]).expand(n, 2, h, w)
    return torch.cat([x, coords], 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OcclusionNet(nn.Module):
    """U-Net: (N, 5, S, S) -> (N, 1, S, S) logits of "occluded"; S divisible by 2^(levels-1)."""

    def __init__(self, channels=CHANNELS, in_channels: int = 5):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        c = self.channels
        self.down = nn.ModuleList([_block(in_channels, c[0])] + [_block(c[i - 1], c[i]) for i in range(1, len(c))])
        self.up = nn.ModuleList([_block(c[i + 1] + c[i], c[i]) for i in range(len(c) - 1)])
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], 1))
        return self.head(x)


def net_payload(net: OcclusionNet, info: dict | None = None) -> dict:
    """What a model file holds: fp16 weights, the architecture, the crop template, and ``info``."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    return {"format": "d3dface-occlusion-net-1", "channels": list(net.channels), "crop": CROP,
            "template5": TEMPLATE5.tolist(), "state": state, "info": dict(info or {})}


def net_from_payload(d: dict, source: str) -> OcclusionNet:
    try:
        if d.get("format") != "d3dface-occlusion-net-1":
            raise ValueError(f"format {d.get('format')!r}")
        if int(d["crop"]) != CROP or not np.allclose(np.asarray(d["template5"]), TEMPLATE5):
            raise ValueError("crop or template differs from this engine's")
        net = OcclusionNet(d["channels"])
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in d["state"].items()})
    except Exception as exc:  # noqa: BLE001 - any malformed file is one clear line
        raise ModelFileError(f"{source} is not a usable occlusion network ({type(exc).__name__}: {exc})") from None
    return net.eval()


def load_occlusion_net(path: str | os.PathLike | None = None) -> OcclusionNet:
    """The occlusion network from ``path`` (default: the shipped one); one ModelFileError line on any problem."""
    return _load(str(Path(path) if path else SHIPPED_NET))


@lru_cache(maxsize=2)
def _load(path: str) -> OcclusionNet:
    if not Path(path).is_file():
        raise ModelFileError(f"occlusion network not found: {path}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{path} is not a usable occlusion network ({type(exc).__name__})") from None
    if not isinstance(d, dict):
        raise ModelFileError(f"{path} is not a usable occlusion network (not a dict)")
    return net_from_payload(d, path)


def shifted_crop_transforms(A: np.ndarray, shift_px: float) -> list[np.ndarray]:
    """(2, 3) transforms: ``A`` itself and, for shift_px > 0, ``A`` followed by a shift of the crop
    by shift_px crop pixels right, left, down and up."""
    out = [A]
    if shift_px > 0:
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            B = A.copy()
            B[:, 2] += (dx * shift_px, dy * shift_px)
            out.append(B)
    return out


def occlusion_probability(image: np.ndarray, points68: np.ndarray, net: OcclusionNet | None = None,
                          flip_average: bool = True, shift_px: float = 0.0) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the network's probability that each photo pixel is occluded.

    ``flip_average`` also runs the mirrored crop and averages (the face is near-symmetric);
    ``shift_px`` > 0 also runs crops shifted by that many crop pixels in four directions and
    averages the five in the photo (the alignment from landmarks of an occluded face is off by a
    few pixels, as the training's jitter assumes).
    """
    net = net or load_occlusion_net()
    transforms = shifted_crop_transforms(crop_transform(points68), shift_px)
    crops = np.stack([warp_to_crop(np.asarray(image), A) for A in transforms])  # (T, CROP, CROP, 3)
    batch = np.concatenate([crops, crops[:, :, ::-1]]) if flip_average else crops
    with torch.inference_mode():
        p = torch.sigmoid(net(network_input(batch)))[:, 0].numpy()
    T = len(transforms)
    probs = 0.5 * (p[:T] + p[T:, :, ::-1]) if flip_average else p  # (T, CROP, CROP), mirrors flipped back
    total = sum(warp_from_crop(q, A, image.shape[:2]) for q, A in zip(probs, transforms))
    return np.clip(total / T, 0.0, 1.0)
