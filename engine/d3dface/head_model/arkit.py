"""The 52 ARKit face expressions on a head model's expression modes (shape keys for animation).

ARKit (Apple's ``ARFaceAnchor.BlendShapeLocation``) names 52 expressions; phone face-capture
apps export weights under these names. The default head model (ICT-FaceKit) has 53 modes named
after them with ``_L``/``_R`` sides: it has no tongue (``tongueOut``) and splits ``browInnerUp``
and ``cheekPuff`` into left and right halves. ``expression_keys`` gives the keys of a head:
- the 52 ARKit keys, each the sum of the model modes of that name (``browInnerUp`` = both
  halves; ``tongueOut`` has none: an empty key, so that a capture file imports whole);
- ``model`` keys: each mode that shares its ARKit name with another (the halves, under the
  model's own names), so that an asymmetric fitted expression is reproduced exactly;
- a ``residual`` key only when the model has modes with no ARKit name (e.g. a FLAME pickle):
  the fitted expression of those modes in one key, so the photo's expression stays exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .model import HeadModel

ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight",
    "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp",
    "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)
RESIDUAL_KEY = "Photo expression (other modes)"
_SIDE = re.compile(r"[_.](L|R)$")


def normalised(name: str) -> str:
    """A lower-case name without separators, a ``_L``/``_R`` side spelt ``left``/``right``:
    ``eyeBlink_L``, ``EyeBlinkLeft`` and ``eye_blink_left`` all become ``eyeblinkleft``."""
    name = _SIDE.sub(lambda m: "Left" if m.group(1) == "L" else "Right", name.strip())
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ARKIT_BY_NORM = {normalised(n): n for n in ARKIT_NAMES}


def arkit_name(model_name: str) -> str:
    """The ARKit name a model mode belongs to ("" for none): its own name in any spelling, else
    the name without its side (a half of a two-sided ARKit expression)."""
    norm = normalised(model_name)
    if norm in _ARKIT_BY_NORM:
        return _ARKIT_BY_NORM[norm]
    for side in ("left", "right"):
        if norm.endswith(side) and norm[: -len(side)] in _ARKIT_BY_NORM:
            return _ARKIT_BY_NORM[norm[: -len(side)]]
    return ""


@dataclass(frozen=True)
class ExpressionKeys:
    """K keys over E model modes: a key's offset is ``exprdirs @ combos[k]`` (the residual key's
    row is filled per head by ``photo_weights``)."""

    names: tuple  # (K,) str
    kinds: tuple  # (K,) "arkit", "model" or "residual"
    combos: np.ndarray  # (K, E) float64

    def offsets(self, model: HeadModel, combos: np.ndarray | None = None) -> np.ndarray:
        """(K, V, 3) each key's offset from the neutral, metres."""
        c = self.combos if combos is None else combos
        return np.einsum("vce,ke->kvc", np.asarray(model.exprdirs, np.float64), c)


def expression_keys(model: HeadModel) -> ExpressionKeys:
    """The keys of a head of ``model`` (module docstring); no keys for a model without expressions."""
    E = model.num_expr
    if E == 0:
        return ExpressionKeys((), (), np.zeros((0, 0)))
    names_model = list(model.expr_names) or [f"expression_{e:03d}" for e in range(E)]
    group = [arkit_name(n) for n in names_model]
    rows, names, kinds = [], [], []
    for a in ARKIT_NAMES:
        rows.append(np.array([1.0 if g == a else 0.0 for g in group]))
        names.append(a)
        kinds.append("arkit")
    for e, g in enumerate(group):
        if g and group.count(g) > 1:
            rows.append(np.eye(E)[e])
            names.append(names_model[e])
            kinds.append("model")
    if not all(group):
        rows.append(np.zeros(E))
        names.append(RESIDUAL_KEY)
        kinds.append("residual")
    return ExpressionKeys(tuple(names), tuple(kinds), np.stack(rows))


def photo_weights(keys: ExpressionKeys, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Key values that rebuild the expression ``weights`` (E,) exactly, and the keys' combos with
    the residual row filled. Returns (values (K,), combos (K, E))."""
    w = np.asarray(weights, np.float64)
    combos = keys.combos.copy()
    values = np.zeros(len(keys.names))
    covered = np.zeros(len(w), bool)
    for k, kind in enumerate(keys.kinds):
        members = np.flatnonzero(combos[k])
        if kind == "model" or (kind == "arkit" and len(members) == 1):
            values[k] = w[members[0]]
            covered[members[0]] = True
    if "residual" in keys.kinds:
        k = keys.kinds.index("residual")
        combos[k] = np.where(covered, 0.0, w)
        values[k] = 1.0
    return values, combos
