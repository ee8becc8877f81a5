"""face-alignment's FAN (2D, 68 points) with per-point heatmap confidence.

face-alignment 1.4 ships no network class: it downloads a TorchScript file
(``2DFAN4...zip``) into torch's hub cache on first use. Nothing may download here, so
this backend only looks for weights already on disk, in order: the ``weights`` argument,
``$D3DFACE_FAN_WEIGHTS``, then face-alignment's usual cache file names under
``torch.hub.get_dir()/checkpoints``. Without them it raises ``BackendUnavailable`` (and
``auto`` falls back to MediaPipe with a one-line notice). A weights file may be
TorchScript or a state dict for ``FAN`` below (the architecture of face-alignment <= 1.2,
BSD-3-Clause, Adrian Bulat), so old ``.pth`` checkpoints load too.

Faces are found by MediaPipe's face detector (offline) or, failing that, OpenCV's
Haar cascade; the crop and heatmap decoding follow face-alignment exactly (64x64
heatmaps of a 256x256 crop, argmax plus a quarter-pixel step toward the larger
neighbour, then the inverse crop transform), except that the final coordinates are
not truncated to integers. The confidence of a point is its heatmap maximum
(face-alignment's "landmark score", the signal the paper thresholds at tau = 0.2).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .landmarks_base import BackendUnavailable, FaceDetection
from .settings import LandmarkSettings

ENV_WEIGHTS = "D3DFACE_FAN_WEIGHTS"
CACHE_NAMES = ("2DFAN4_1.6-c827573f02.zip", "2DFAN4_1.5-a60332318a.zip", "2DFAN4-cd938726ad.zip",
               "2DFAN4-11f355bf06.pth.tar")
REFERENCE_SCALE = 195.0   # face-alignment's box-size normaliser (its SFD detector)
RESOLUTION = 256

_NETS: dict = {}


# --------------------------------------------------------------------------- network class

def _fan_modules():
    """The ``FAN`` class (classes are made on call: torch is imported only when FAN is used)."""
    conv_block = _conv_block_class()
    return _fan_class(conv_block, _hourglass_class(conv_block))


def _conv3x3(i, o):
    """A 3x3 convolution, stride 1, padding 1, no bias: i -> o channels."""
    import torch.nn as nn

    return nn.Conv2d(i, o, kernel_size=3, stride=1, padding=1, bias=False)


def _conv_block_class():
    """face-alignment's ``ConvBlock``: (B, in, H, W) -> (B, out, H, W), pre-activation residual
    block whose three convolutions' outputs (out/2, out/4, out/4 channels) are concatenated."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ConvBlock(nn.Module):
        def __init__(self, in_planes, out_planes):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(in_planes)
            self.conv1 = _conv3x3(in_planes, out_planes // 2)
            self.bn2 = nn.BatchNorm2d(out_planes // 2)
            self.conv2 = _conv3x3(out_planes // 2, out_planes // 4)
            self.bn3 = nn.BatchNorm2d(out_planes // 4)
            self.conv3 = _conv3x3(out_planes // 4, out_planes // 4)
            self.downsample = None
            if in_planes != out_planes:
                self.downsample = nn.Sequential(
                    nn.BatchNorm2d(in_planes), nn.ReLU(True),
                    nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=1, bias=False))

        def forward(self, x):
            out1 = self.conv1(F.relu(self.bn1(x), True))
            out2 = self.conv2(F.relu(self.bn2(out1), True))
            out3 = self.conv3(F.relu(self.bn3(out2), True))
            out3 = torch.cat((out1, out2, out3), 1)
            residual = x if self.downsample is None else self.downsample(x)
            return out3 + residual

    return ConvBlock


def _hourglass_class(ConvBlock):
    """face-alignment's ``HourGlass`` of ``depth`` levels: (B, f, H, W) -> (B, f, H, W), H and W
    divisible by 2**depth (each level halves them with average pooling and upsamples back)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class HourGlass(nn.Module):
        def __init__(self, depth, features):
            super().__init__()
            self.depth = depth
            self._make(depth, features)

        def _make(self, level, f):
            self.add_module(f"b1_{level}", ConvBlock(f, f))
            self.add_module(f"b2_{level}", ConvBlock(f, f))
            if level > 1:
                self._make(level - 1, f)
            else:
                self.add_module(f"b2_plus_{level}", ConvBlock(f, f))
            self.add_module(f"b3_{level}", ConvBlock(f, f))

        def _forward(self, level: int, inp):
            up1 = self._modules[f"b1_{level}"](inp)
            low1 = self._modules[f"b2_{level}"](F.avg_pool2d(inp, 2, stride=2))
            if level > 1:
                low2 = self._forward(level - 1, low1)
            else:
                low2 = self._modules[f"b2_plus_{level}"](low1)
            low3 = self._modules[f"b3_{level}"](low2)
            return up1 + F.interpolate(low3, scale_factor=2.0, mode="nearest")

        def forward(self, x):
            return self._forward(self.depth, x)

    return HourGlass


def _fan_class(ConvBlock, HourGlass):
    """face-alignment's ``FAN`` (stacked hourglasses) built from the two block classes."""
    import torch.nn as nn
    import torch.nn.functional as F

    class FAN(nn.Module):
        """Face Alignment Network: (B, 3, 256, 256) in [0, 1] -> (B, 68, 64, 64) heatmaps."""

        def __init__(self, num_modules: int = 4):
            super().__init__()
            self.num_modules = num_modules
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
            self.bn1 = nn.BatchNorm2d(64)
            self.conv2 = ConvBlock(64, 128)
            self.conv3 = ConvBlock(128, 128)
            self.conv4 = ConvBlock(128, 256)
            for i in range(num_modules):
                self.add_module(f"m{i}", HourGlass(4, 256))
                self.add_module(f"top_m_{i}", ConvBlock(256, 256))
                self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, kernel_size=1))
                self.add_module(f"bn_end{i}", nn.BatchNorm2d(256))
                self.add_module(f"l{i}", nn.Conv2d(256, 68, kernel_size=1))
                if i < num_modules - 1:
                    self.add_module(f"bl{i}", nn.Conv2d(256, 256, kernel_size=1))
                    self.add_module(f"al{i}", nn.Conv2d(68, 256, kernel_size=1))

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)), True)
            x = F.avg_pool2d(self.conv2(x), 2, stride=2)
            x = self.conv4(self.conv3(x))
            previous, out = x, x
            for i in range(self.num_modules):
                ll = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
                ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)), True)
                out = self._modules[f"l{i}"](ll)
                if i < self.num_modules - 1:
                    previous = previous + self._modules[f"bl{i}"](ll) + self._modules[f"al{i}"](out)
            return out

    return FAN


def build_fan(num_modules: int = 4):
    """A FAN network (untrained) with face-alignment's module names."""
    return _fan_modules()(num_modules)


# --------------------------------------------------------------------------- weights

def find_fan_weights(weights=None) -> Path | None:
    """The first FAN weights file on disk (argument, $D3DFACE_FAN_WEIGHTS, torch hub cache)."""
    cands = []
    if weights:
        cands.append(Path(weights).expanduser())
    if os.environ.get(ENV_WEIGHTS):
        cands.append(Path(os.environ[ENV_WEIGHTS]).expanduser())
    try:
        import torch.hub

        hub = Path(torch.hub.get_dir()) / "checkpoints"
        cands += [hub / n for n in CACHE_NAMES]
    except Exception:  # noqa: BLE001 - no torch: the caller reports it
        pass
    for c in cands:
        if c.is_file():
            return c
    return None


def load_fan(path: Path):
    """A FAN module in eval mode from a TorchScript file or a (possibly wrapped) state dict."""
    import torch

    key = str(Path(path).resolve())
    if key in _NETS:
        return _NETS[key]
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception:  # noqa: BLE001 - not TorchScript: try a state dict
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailable(f"FAN weights {path} are unreadable ({type(exc).__name__})") from None
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        n = 1 + max((int(k[1:].split(".")[0]) for k in sd if k.startswith("m") and k[1:2].isdigit()), default=0)
        net = build_fan(n)
        try:
            net.load_state_dict(sd)
        except RuntimeError as exc:
            raise BackendUnavailable(f"FAN weights {path} do not fit the FAN network ({str(exc)[:80]})") from None
    net.eval()
    _NETS[key] = net
    return net


# --------------------------------------------------------------------------- crop and decoding

def crop_transform(center, scale: float, resolution: float = RESOLUTION) -> np.ndarray:
    """3x3 matrix from image px to crop px (face-alignment's ``transform``)."""
    h = 200.0 * scale
    t = np.eye(3)
    t[0, 0] = t[1, 1] = resolution / h
    t[0, 2] = resolution * (-center[0] / h + 0.5)
    t[1, 2] = resolution * (-center[1] / h + 0.5)
    return t


def crop_image(image: np.ndarray, center, scale: float, resolution: int = RESOLUTION) -> np.ndarray:
    """The (resolution, resolution, 3) crop face-alignment's ``crop`` makes (same corners)."""
    inv = np.linalg.inv(crop_transform(center, scale, resolution))
    ul = (inv @ [1, 1, 1])[:2].astype(np.int64)
    br = (inv @ [resolution, resolution, 1])[:2].astype(np.int64)
    ht, wd = image.shape[:2]
    new = np.zeros((br[1] - ul[1], br[0] - ul[0], 3), np.uint8)
    nx = (max(1, -ul[0] + 1), min(br[0], wd) - ul[0])
    ny = (max(1, -ul[1] + 1), min(br[1], ht) - ul[1])
    ox = (max(1, ul[0] + 1), min(br[0], wd))
    oy = (max(1, ul[1] + 1), min(br[1], ht))
    if nx[1] >= nx[0] and ny[1] >= ny[0]:
        new[ny[0] - 1:ny[1], nx[0] - 1:nx[1]] = image[oy[0] - 1:oy[1], ox[0] - 1:ox[1]]
    return cv2.resize(new, (resolution, resolution), interpolation=cv2.INTER_LINEAR)


def decode_heatmaps(hm: np.ndarray, center=None, scale: float | None = None):
    """Heatmaps (N, H, W) -> (points in heatmap px (N, 2), points in image px (N, 2) or None, confidence (N,)).

    Argmax, a quarter-pixel step toward the larger neighbour on each axis (interior
    peaks only), minus half a pixel; image points apply the inverse crop transform
    for a heatmap of H px spanning the 256 px crop (no integer truncation).
    """
    hm = np.asarray(hm, np.float32)
    n, h, w = hm.shape
    flat = hm.reshape(n, -1)
    idx = flat.argmax(1)
    conf = flat[np.arange(n), idx]
    px, py = idx % w, idx // w
    pts = np.stack([px, py], 1).astype(np.float32) + 1.0
    for i in range(n):
        x, y = int(px[i]), int(py[i])
        if 0 < x < w - 1 and 0 < y < h - 1:
            d = np.array([hm[i, y, x + 1] - hm[i, y, x - 1], hm[i, y + 1, x] - hm[i, y - 1, x]])
            pts[i] += np.sign(d) * 0.25
    pts -= 0.5
    img = None
    if center is not None and scale is not None:
        inv = np.linalg.inv(crop_transform(center, scale, h))
        img = (np.c_[pts.astype(np.float64), np.ones(n)] @ inv.T)[:, :2]
    return pts, img, conf


def box_to_center_scale(box) -> tuple[np.ndarray, float]:
    """face-alignment's crop centre and scale for a face box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    center = np.array([x1 - (x1 - x0) / 2.0, y1 - (y1 - y0) / 2.0])
    center[1] -= (y1 - y0) * 0.12
    return center, (x1 - x0 + y1 - y0) / REFERENCE_SCALE


# --------------------------------------------------------------------------- face boxes

def _detect_boxes(rgb: np.ndarray, settings: LandmarkSettings) -> list[np.ndarray]:
    """Face boxes (x0, y0, x1, y1) px, shaped like face-alignment's SFD boxes (forehead to chin)."""
    h, w = rgb.shape[:2]
    boxes = []
    try:
        from .mediapipe_backend import _quiet_native_stderr
        from mediapipe.python.solutions import face_detection

        key = ("fd", settings.min_detection_confidence)
        if key not in _NETS:
            with _quiet_native_stderr():
                _NETS[key] = face_detection.FaceDetection(model_selection=1,
                                                          min_detection_confidence=settings.min_detection_confidence)
        with _quiet_native_stderr():
            res = _NETS[key].process(np.ascontiguousarray(rgb))
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            x0, y0, bw, bh = bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h
            # MediaPipe boxes run from the brows to the chin; SFD's reach the hairline
            boxes.append(np.array([x0 - 0.05 * bw, y0 - 0.2 * bh, x0 + 1.05 * bw, y0 + bh]))
    except ImportError:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        casc = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
        for x, y, bw, bh in casc.detectMultiScale(gray, 1.1, 5, minSize=(24, 24)):
            boxes.append(np.array([x, y, x + bw, y + 1.1 * bh], np.float64))
    return boxes


class FanBackend:
    name = "fan"

    def __init__(self, settings: LandmarkSettings | None = None, weights=None, net=None):
        self.settings = settings or LandmarkSettings()
        if net is not None:
            self.net = net
            return
        try:
            import torch  # noqa: F401
        except ImportError:
            raise BackendUnavailable("FAN needs torch, which is not installed") from None
        path = find_fan_weights(weights)
        if path is None:
            where = f"{weights}" if weights else f"${ENV_WEIGHTS} or the torch hub cache"
            raise BackendUnavailable(f"FAN landmark weights not found ({where}); they cannot be downloaded here")
        self.net = load_fan(path)

    def heatmaps(self, rgb: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, float]:
        import torch

        center, scale = box_to_center_scale(box)
        inp = crop_image(rgb, center, scale)
        x = torch.from_numpy(inp.transpose(2, 0, 1).copy()).float().div_(255.0)[None]
        with torch.no_grad():
            out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out[0].float().cpu().numpy(), center, scale

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]:
        faces = []
        for box in _detect_boxes(rgb, self.settings):
            hm, center, scale = self.heatmaps(rgb, box)
            _, pts, conf = decode_heatmaps(hm, center, scale)
            faces.append(FaceDetection(points68=pts, confidence68=np.clip(conf, 0, None), box=box))
        return faces
