"""Training the occlusion network (``d3dface train-occlusion-net``).

Data: composites made on the fly. A face photo (``images/faces``, landmarks found once by
MediaPipe on the clean photo) is warped to the aligned crop with a random jitter of the
alignment (scale, rotation, shift: what landmarks found on an occluded face do), then 0-2
occluders are drawn on the crop from its landmarks: the training kinds of
``training.mask_occluders`` (hands, hair, beards, sunglasses, clear glasses, surgical
masks, cups, scarves) and, with ``eval_kinds``, the evaluation generator's three kinds
with seeds far from the ones ``evaluate-inputs`` uses. The label is the union of the
occluders' pixels (alpha >= 0.5). Then the whole crop is jittered photometrically
(a smooth light field that puts a side of the face in shadow, brightness, contrast, gamma,
colour balance, saturation, grey, blur, noise, JPEG). Before that, soft shadows that are
not occluders go on the skin (``p_local_shadow``, ``p_cast_shadow``); before the occluders,
the face may take another skin tone (``p_skin_tone``).

Assumptions: occluders look like these generators' shapes and textures; a face is any
of the given photos under those colour, tone and shadow changes; a shadow is never an
occluder; a beard counts as an occluder (as in the
hand-drawn masks: it hides the chin's shape).

Loss: binary cross-entropy plus soft Dice, inside the face hull (grown by a margin);
outside it the label is weighted by ``outside_weight`` (the mask is only used inside
M_f). Data are a pure function of (seed, step), so ``--resume`` sees what the
uninterrupted run would have seen. The run folder holds ``last.pt``, ``log.csv`` and, at
the end, ``model.pt`` (the exported network, fp16).
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..atomic import write_atomic, write_text_atomic
from ..errors import InputFileError
from ..inputs.image_io import load_image
from ..inputs.landmarks_base import detect_landmarks, inter_ocular_distance
from ..inputs.masks import hull_mask, outline_from_68
from ..inputs.occluders import KINDS as EVAL_KINDS, composite, load_textures, occluder_layer
from ..inputs.occlusion_net import CROP, OcclusionNet, crop_transform, net_payload, network_input, warp_to_crop
from .mask_occluders import TRAIN_KINDS, training_layer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EVAL_SEED_BASE = 1_000_000   # evaluation-generator seeds used here start at this (evaluate-inputs uses 0, 1, ...)


@dataclass
class OcclusionTrainSettings:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-3
    lr_final: float = 0.05          # share of lr at the end (cosine decay)
    weight_decay: float = 1e-4
    p_none: float = 0.1             # share of crops with no occluder
    p_two: float = 0.25             # share with two occluders
    eval_kinds: bool = True         # also draw the evaluation generator's kinds (other seeds)
    outside_weight: float = 0.1     # loss weight outside the grown face hull
    dice_weight: float = 1.0
    # soft shadows on the skin that are not occluders: under the chin, nose and brows, in the eye
    # sockets and at the jaw (``p_local_shadow``), and cast by an occluder beside itself
    # (``p_cast_shadow``). 0 and 0 (with p_skin_tone 0) are the first shipped network's data;
    # with these, IoU on the hand-drawn masks 0.86 / 0.82 / 0.70 against 0.85 / 0.78 / 0.66
    # (README, "Automatic occlusion mask")
    p_local_shadow: float = 0.4
    p_cast_shadow: float = 0.4
    # soft highlights on the skin that are not occluders either: a lit forehead, nose, cheekbone
    # or chin (``p_highlight``; 0 is the second shipped network's data)
    p_highlight: float = 0.0
    # share of crops whose face (the grown hull, soft-edged) is darkened and tinted before the
    # occluders go on: other skin tones against the same occluders (the photos are mostly light)
    p_skin_tone: float = 0.3
    checkpoint_every: int = 100
    seed: int = 0
    threads: int = 0                # torch threads (0: every core; training is one big job, unlike a reconstruction)
    kinds: tuple[str, ...] = field(default_factory=lambda: tuple(TRAIN_KINDS))


@dataclass
class FaceSource:
    image: np.ndarray      # (H, W, 3) uint8
    points68: np.ndarray   # (68, 2) px
    name: str


def load_faces(images_dir: Path) -> list[FaceSource]:
    """The photos of ``images_dir/faces`` with their MediaPipe landmarks."""
    folder = Path(images_dir) / "faces"
    if not folder.is_dir():
        raise InputFileError(f"images folder {images_dir} has no faces/ sub-folder")
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            img = load_image(p)
            out.append(FaceSource(img, detect_landmarks(img, "mediapipe").points68.astype(np.float64), p.stem))
    if not out:
        raise InputFileError(f"no face photos in {folder}")
    return out


def _jittered_transform(points68, rng) -> np.ndarray:
    A = crop_transform(points68).astype(np.float64)
    s = rng.uniform(0.88, 1.12)
    r = np.deg2rad(rng.normal(0, 7.0))
    c = np.array([CROP / 2, CROP / 2])
    J = s * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    t = c - J @ c + rng.normal(0, 2.5, 2)
    return np.concatenate([J @ A[:, :2], (J @ A[:, 2] + t)[:, None]], 1).astype(np.float32)


def face_region(points68: np.ndarray, hw, grow_px: float) -> np.ndarray:
    """(H, W) bool: the 68-point face hull with a forehead, dilated by ``grow_px``."""
    m = hull_mask(outline_from_68(points68), hw).astype(np.uint8)
    r = max(1, int(round(grow_px)))
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def _shading(x: np.ndarray, rng) -> np.ndarray:
    """Multiply a float crop by a smooth light field: a side falling into shadow (by up to 75%),
    sometimes a low-frequency blotch field. Shadows on skin are not occluders."""
    h, w = x.shape[:2]
    field = np.ones((h, w), np.float32)
    if rng.random() < 0.6:
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx - w / 2) * np.cos(ang) + (yy - h / 2) * np.sin(ang)) / (0.5 * w)
        edge, width = rng.uniform(-0.6, 0.6), rng.uniform(0.15, 0.8)
        s = np.clip((t - edge) / width + 0.5, 0, 1)
        field *= 1 - rng.uniform(0.2, 0.75) * s * s * (3 - 2 * s)
    if rng.random() < 0.3:
        small = rng.uniform(1 - rng.uniform(0.1, 0.4), 1, (3, 3)).astype(np.float32)
        field *= cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return x * field[..., None]


# landmarks where faces fall into their own shadow: chin, jaw corners, under the nose, the
# inner eye corners (sockets), the brows' middles, the mouth corners
SHADOW_ANCHORS = (8, 7, 9, 5, 11, 33, 39, 42, 19, 24, 48, 54)


def _darken(x: np.ndarray, amount: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """x (H, W, 3) uint8 times 1 - amount (H, W) in [0, 1], except where ``keep`` (H, W) bool."""
    f = 1.0 - np.where(keep, 0.0, amount)[..., None]
    return np.clip(x.astype(np.float32) * f + 0.5, 0, 255).astype(np.uint8)


def _shadows(crop: np.ndarray, pts: np.ndarray, label: np.ndarray, rng, settings: OcclusionTrainSettings) -> np.ndarray:
    """Soft shadows on what the label leaves uncovered (an occluder in front stays lit): 1-3
    blurred ellipses at ``SHADOW_ANCHORS``, and the label's own silhouette shifted and blurred
    (a contact shadow). Assumption: a shadow darkens without texture, an occluder brings its own."""
    iod = inter_ocular_distance(pts)
    h, w = label.shape
    if rng.random() < settings.p_local_shadow:
        field = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            c = pts[SHADOW_ANCHORS[int(rng.integers(len(SHADOW_ANCHORS)))]] + rng.normal(0, 0.1 * iod, 2)
            axes = (int(rng.uniform(0.15, 0.6) * iod) + 1, int(rng.uniform(0.1, 0.35) * iod) + 1)
            blob = np.zeros((h, w), np.uint8)
            cv2.ellipse(blob, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            soft = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), rng.uniform(0.08, 0.25) * iod)
            field = np.maximum(field, soft * rng.uniform(0.25, 0.7))
        crop = _darken(crop, field, label)
    if label.any() and rng.random() < settings.p_cast_shadow:
        ang = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0.05, 0.25) * iod
        M = np.float32([[1, 0, d * np.cos(ang)], [0, 1, d * np.sin(ang)]])
        sil = cv2.warpAffine(label.astype(np.float32), M, (w, h))
        sil = cv2.GaussianBlur(sil, (0, 0), rng.uniform(0.03, 0.15) * iod)
        crop = _darken(crop, sil * rng.uniform(0.3, 0.65), label)
    return crop


# where faces catch the light: the forehead (above the brows' middles and between them), the nose's
# bridge and tip, the cheekbones (below the eyes' outer corners) and the chin, as (landmark,
# offset in IOD along the face's up direction)
HIGHLIGHT_ANCHORS = ((19, 0.45), (24, 0.45), (27, 0.6), (28, 0.0), (30, 0.0), (36, -0.45),
                     (45, -0.45), (8, 0.25))


def _highlights(crop: np.ndarray, pts: np.ndarray, label: np.ndarray, rng) -> np.ndarray:
    """1-2 soft highlights on what the label leaves uncovered: blurred ellipses at
    ``HIGHLIGHT_ANCHORS`` that move the skin 15-50% of the way to white. Assumption: light on
    skin brightens it without a texture of its own; an occluder brings its own."""
    iod = inter_ocular_distance(pts)
    h, w = label.shape
    up = pts[27] - pts[8]
    up = up / max(np.linalg.norm(up), 1e-6)
    field = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        i, off = HIGHLIGHT_ANCHORS[int(rng.integers(len(HIGHLIGHT_ANCHORS)))]
        c = pts[i] + off * iod * up + rng.normal(0, 0.08 * iod, 2)
        axes = (int(rng.uniform(0.12, 0.45) * iod) + 1, int(rng.uniform(0.08, 0.25) * iod) + 1)
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        soft = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), rng.uniform(0.08, 0.2) * iod)
        field = np.maximum(field, soft * rng.uniform(0.15, 0.5))
    a = np.where(label, 0.0, field)[..., None]
    x = crop.astype(np.float32)
    return np.clip(x + a * (255.0 - x) + 0.5, 0, 255).astype(np.uint8)


def _skin_tone(crop: np.ndarray, pts: np.ndarray, rng) -> np.ndarray:
    """The face darkened to 40-85% and tinted warmer, fading out over 0.15 IOD at the hull's edge
    (hair and background as they were). Assumption: another skin tone is, to first order, a
    lower albedo with more red than blue."""
    iod = inter_ocular_distance(pts)
    m = face_region(pts, crop.shape[:2], 0.05 * iod).astype(np.float32)
    m = cv2.GaussianBlur(m, (0, 0), 0.15 * iod)[..., None]
    gain = rng.uniform(0.4, 0.85) * np.array([1.0, rng.uniform(0.85, 0.97), rng.uniform(0.7, 0.92)], np.float32)
    x = crop.astype(np.float32) * (1 - m + m * gain)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _photometric(img: np.ndarray, rng) -> np.ndarray:
    x = _shading(img.astype(np.float32) / 255.0, rng)
    if rng.random() < 0.1:
        x = np.repeat(x.mean(-1, keepdims=True), 3, -1)
    x = x ** rng.uniform(0.7, 1.4)
    x = x * rng.uniform(0.85, 1.15, 3).astype(np.float32) * rng.uniform(0.6, 1.3)
    m = x.mean((0, 1), keepdims=True)
    x = (x - m) * rng.uniform(0.7, 1.3) + m
    g = x.mean(-1, keepdims=True)
    x = g + (x - g) * rng.uniform(0.6, 1.4)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.3))
    if rng.random() < 0.4:
        x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    out = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def make_sample(face: FaceSource, rng: np.random.Generator, settings: OcclusionTrainSettings, textures) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One composite: crop (CROP, CROP, 3) uint8, label (CROP, CROP) bool, loss weight (CROP, CROP) float32."""
    A = _jittered_transform(face.points68, rng)
    crop = warp_to_crop(face.image, A)
    pts = face.points68 @ A[:, :2].T.astype(np.float64) + A[:, 2]
    label = np.zeros((CROP, CROP), bool)
    if settings.p_skin_tone > 0 and rng.random() < settings.p_skin_tone:
        crop = _skin_tone(crop, pts, rng)
    u = rng.random()
    n = 0 if u < settings.p_none else (2 if u < settings.p_none + settings.p_two else 1)
    kinds = list(settings.kinds) + (list(EVAL_KINDS) if settings.eval_kinds else [])
    for _ in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind in EVAL_KINDS and kind not in settings.kinds:
            layer = occluder_layer((CROP, CROP), pts, kind, EVAL_SEED_BASE + int(rng.integers(1 << 30)), textures)
            mask = layer.mask
        else:
            layer = training_layer(crop, pts, kind, rng, textures)
            mask = layer.alpha >= 0.5
        crop = composite(crop, layer).image
        label |= mask
    if settings.p_local_shadow > 0 or settings.p_cast_shadow > 0:
        crop = _shadows(crop, pts, label, rng, settings)
    if settings.p_highlight > 0 and rng.random() < settings.p_highlight:
        crop = _highlights(crop, pts, label, rng)
    if rng.random() < 0.5:
        crop, label, pts = crop[:, ::-1], label[:, ::-1], pts * [-1, 1] + [CROP - 1, 0]
    crop = _photometric(np.ascontiguousarray(crop), rng)
    iod = inter_ocular_distance(pts)
    inside = face_region(pts, (CROP, CROP), 0.1 * iod)
    weight = np.where(inside, 1.0, settings.outside_weight).astype(np.float32)
    return crop, np.ascontiguousarray(label), weight


def make_batch(faces, step: int, settings: OcclusionTrainSettings, textures):
    rng = np.random.default_rng([settings.seed, step])
    xs, ys, ws = zip(*(make_sample(faces[int(rng.integers(len(faces)))], rng, settings, textures)
                       for _ in range(settings.batch_size)))
    return (network_input(np.stack(xs)), torch.as_tensor(np.stack(ys)).float()[:, None],
            torch.as_tensor(np.stack(ws))[:, None])


def occlusion_loss(logits, label, weight, dice_weight: float = 1.0) -> torch.Tensor:
    """Weighted BCE + soft Dice (per crop, inside the weight) for (N, 1, S, S) tensors."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, label, weight=weight, reduction="sum")
    bce = bce / weight.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * weight
    inter = (p * label).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + (label * weight).sum((1, 2, 3)) + 1)
    return bce + dice_weight * dice.mean()


class OcclusionTrainer:
    """Train (or resume) a run in ``out``; ``run()`` returns the exported model path."""

    def __init__(self, out: str | Path, images_dir: Path, settings: OcclusionTrainSettings | None = None,
                 resume: bool = False, progress: bool = True):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings or OcclusionTrainSettings()
        torch.set_num_threads(self.settings.threads or os.cpu_count() or 1)
        self.progress = progress
        self.faces = load_faces(images_dir)
        self.textures = load_textures(Path(images_dir) / "backgrounds")
        torch.manual_seed(self.settings.seed)
        self.net = OcclusionNet()
        self.opt = torch.optim.AdamW(self.net.parameters(), self.settings.lr, weight_decay=self.settings.weight_decay)
        self.step = 0
        self.log: list[dict] = []
        if resume:
            self._resume()

    def _lr(self, step: int) -> float:
        s = self.settings
        t = min(step / max(s.steps, 1), 1.0)
        return float(s.lr * (s.lr_final + (1 - s.lr_final) * 0.5 * (1 + np.cos(np.pi * t))))

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.is_file():
            raise InputFileError(f"nothing to resume: {path} not found")
        d = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(d["net"])
        self.opt.load_state_dict(d["opt"])
        self.step, self.log = int(d["step"]), list(d["log"])

    def _save_state(self) -> None:
        state = {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "step": self.step, "log": self.log}
        write_atomic(self.out / "last.pt", lambda p: torch.save(state, p))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["step", "loss", "lr", "seconds"])
        w.writeheader()
        w.writerows(self.log)
        write_text_atomic(self.out / "log.csv", buf.getvalue())

    def run(self) -> Path:
        from tqdm import tqdm

        s = self.settings
        self.net.train()
        bar = tqdm(total=s.steps, initial=self.step, disable=not self.progress, desc="train-occlusion-net", unit="step")
        t0, acc = time.perf_counter(), []
        while self.step < s.steps:
            x, y, w = make_batch(self.faces, self.step, s, self.textures)
            for g in self.opt.param_groups:
                g["lr"] = self._lr(self.step)
            loss = occlusion_loss(self.net(x), y, w, s.dice_weight)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
            acc.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(acc[-20:]):.3f}")
            if self.step % 20 == 0 or self.step == s.steps:
                self.log.append({"step": self.step, "loss": round(float(np.mean(acc[-20:])), 5),
                                 "lr": round(self._lr(self.step), 7), "seconds": round(time.perf_counter() - t0, 1)})
            if self.step % s.checkpoint_every == 0 or self.step == s.steps:
                self._save_state()
        bar.close()
        info = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
                "faces": [f.name for f in self.faces], "final_loss": self.log[-1]["loss"] if self.log else None,
                "trained": time.strftime("%Y-%m-%d")}
        payload = net_payload(self.net.eval(), info)
        return write_atomic(self.out / "model.pt", lambda p: torch.save(payload, p))
