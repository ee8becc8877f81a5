"""The head's expression keys in use: the photo's expression or the neutral, and ARKit weight
animations from CSV files (the format phone face-capture apps such as Live Link Face export:
one row per frame, one column per ARKit expression, e.g. ``EyeBlinkLeft``; other columns such
as ``Timecode``, ``BlendShapeCount`` or ``HeadYaw`` are ignored). No mathematics: values are
copied from the file or from what the engine stored on the object.

Column names match key names ignoring case and separators, with ``_L``/``_R`` read as
``Left``/``Right`` (``eyeBlink_L``, ``EyeBlinkLeft`` and ``eyeblinkleft`` all drive
``eyeBlinkLeft``); the same rule as the engine's ``head_model/arkit.normalised``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from . import scene_writer

_SIDE = re.compile(r"[_.](L|R)$")
LAST_IMPORT: dict = {}  # what the last import did (for ``api.import_arkit_csv``)


class AnimationFileError(ValueError):
    """A CSV that cannot be imported (one line)."""


def normalised(name: str) -> str:
    name = _SIDE.sub(lambda m: "Left" if m.group(1) == "L" else "Right", name.strip())
    return re.sub(r"[^a-z0-9]", "", name.lower())


def read_weights_csv(path: str, key_names: list[str]) -> tuple[list[str], list[list[float]], list[str]]:
    """(matched key names K, rows N x K of weights, ignored column names) of a CSV whose header
    names ARKit expressions. Raises AnimationFileError for a missing, empty or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise AnimationFileError(f"animation file not found: {p}")
    by_norm = {normalised(n): n for n in key_names}
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise AnimationFileError(f"{p.name} is empty")
            cols = [(i, by_norm[normalised(h)]) for i, h in enumerate(header) if normalised(h) in by_norm]
            if not cols:
                raise AnimationFileError(f"{p.name} has no column named after an expression key (e.g. EyeBlinkLeft, jawOpen)")
            rows = []
            for r, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    rows.append([float(row[i]) for i, _ in cols])
                except (ValueError, IndexError):
                    raise AnimationFileError(f"{p.name} line {r}: a weight is missing or not a number") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnimationFileError(f"cannot read {p.name}: {exc}") from None
    if not rows:
        raise AnimationFileError(f"{p.name} has a header but no frames")
    matched = {i for i, _ in cols}
    ignored = [h for i, h in enumerate(header) if i not in matched]
    return [n for _, n in cols], rows, ignored


def _fcurve(key, data_path: str):
    """The F-curve animating ``data_path`` on the shape-key datablock, or None."""
    from bpy_extras import anim_utils

    ad = key.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot) if ad and ad.action else None
    return bag.fcurves.find(data_path) if bag is not None else None


def import_weights_csv(obj, path: str, start_frame: int = 1) -> dict:
    """Keyframe the object's expression keys from an ARKit weight CSV, one row per frame from
    ``start_frame``, on the neutral head (every expression key at 0 and the jaw at rest first);
    existing keyframes of those keys in that range are replaced. Returns
    {"frames": N, "keys": [...], "ignored": [...]}. Checks the whole file before changing anything."""
    if not scene_writer.is_d3dface_object(obj):
        raise AnimationFileError("the target is not a Diverse3DFace object")
    key_names = scene_writer.expression_key_names(obj)
    if not key_names:
        raise AnimationFileError(f"{obj.name} has no expression keys (made by an older engine): reconstruct it again")
    names, rows, ignored = read_weights_csv(path, key_names)
    set_expression(obj, "NEUTRAL")  # the capture drives the head from its neutral: keys it lacks stay 0
    blocks = obj.data.shape_keys.key_blocks
    first, last = int(start_frame), int(start_frame) + len(rows) - 1
    key = obj.data.shape_keys
    for k, name in enumerate(names):
        kb = blocks[name]
        kb.slider_min = min(kb.slider_min, min(r[k] for r in rows))
        kb.slider_max = max(kb.slider_max, max(r[k] for r in rows))
        data_path = f'key_blocks["{name}"].value'
        fc = _fcurve(key, data_path)
        if fc is None:  # the first keyframe makes the action, its slot and the F-curve
            kb.keyframe_insert("value", frame=first)
            fc = _fcurve(key, data_path)
        for pt in reversed(list(fc.keyframe_points)):
            if first <= pt.co[0] <= last:
                fc.keyframe_points.remove(pt, fast=True)
        start = len(fc.keyframe_points)
        fc.keyframe_points.add(len(rows))
        for f, r in enumerate(rows):
            pt = fc.keyframe_points[start + f]
            pt.co = (float(first + f), float(r[k]))
            pt.interpolation = "LINEAR"
        fc.update()
    scene = obj.users_scene[0] if obj.users_scene else None
    if scene is not None and scene.frame_end < last:
        scene.frame_end = last
    LAST_IMPORT.clear()
    LAST_IMPORT.update({"frames": len(rows), "keys": names, "ignored": ignored})
    return dict(LAST_IMPORT)


def set_expression(obj, which: str = "PHOTO") -> None:
    """Every expression key to the photo's value ("PHOTO", with the fitted jaw on the rig) or to
    0 ("NEUTRAL", the rig at rest)."""
    d = scene_writer.stored(obj)
    values = d.get("photo_expression", {})
    blocks = obj.data.shape_keys.key_blocks
    for name in scene_writer.expression_key_names(obj):
        if name in blocks:
            blocks[name].value = float(values.get(name, 0.0)) if which == "PHOTO" else 0.0
    arm = obj.parent if obj.parent is not None and obj.parent.type == "ARMATURE" else None
    if arm is not None:
        for bone, q in d.get("photo_pose", {}).items():
            pb = arm.pose.bones.get(bone)
            if pb is not None and pb.rotation_mode == "QUATERNION":
                pb.rotation_quaternion = [float(v) for v in q] if which == "PHOTO" else (1.0, 0.0, 0.0, 0.0)
