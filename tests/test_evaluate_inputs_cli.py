"""``d3dface evaluate-inputs``: the report of landmarks and automatic masks on real photos, run
end to end on one clean face (synthetic occluders) and the hand-drawn masks of the shared photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import IMAGES
from test_inputs_masks_cli import NET_IOU_BARS

pytest.importorskip("mediapipe")

D3DFACE = Path(sys.executable).parent / "d3dface"
FACE = "frontal_man_224.jpg"


def _images(tmp_path: Path) -> Path:
    """An images folder with one clean face, the shared backgrounds and occluded photos."""
    root = tmp_path / "images"
    (root / "faces").mkdir(parents=True)
    (root / "faces" / FACE).symlink_to(IMAGES / "faces" / FACE)
    for sub in ("backgrounds", "occluded"):
        (root / sub).symlink_to(IMAGES / sub)
    return root


def test_evaluate_inputs_reports_real_masks_synthetic_occluders_and_overlays(tmp_path):
    from d3dface.inputs.occluders import KINDS

    out = tmp_path / "report"
    res = subprocess.run([D3DFACE, "evaluate-inputs", "--images", _images(tmp_path), "--seeds", "1", "--out", out],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()

    # one face x one seed per occluder type, each a case or a counted detection failure
    assert set(report["synthetic"]) == set(KINDS)
    for kind, r in report["synthetic"].items():
        assert r["cases"] + r["no_face"] == 1, kind
        if r["cases"]:
            assert 0.0 <= r["auto_iou_in_face"] <= 1.0 and f"| {kind} | 1 |" in md
    # the hand-drawn masks: IoU inside the face at the bars of test_inputs_masks_cli, and the
    # markdown table shows the same numbers as the JSON
    assert set(report["real_masks"]) == set(NET_IOU_BARS)
    for name, bar in NET_IOU_BARS.items():
        r = report["real_masks"][name]
        assert r["iou_in_face"] > bar, (name, r)
        assert r["iou_in_face_skin"] < r["iou_in_face"]  # the network beats the skin model on each photo
        assert f"| {name} | {r['iou']:.3f} | {r['iou_in_face']:.3f} | {r['iou_in_face_skin']:.3f} |" in md
    assert report["timing"]["mediapipe"]["available"] and report["timing"]["mediapipe"]["auto_mask_sec_per_image"] < 5

    # overlays: the five shared occluded photos and one per synthetic occluder, each the photo's
    # shape (small photos enlarged to 384 px, as ``draw_overlay`` makes them legible)
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    real = [f"real_{n}_auto.png" for n in ("eyeglasses_woman", "glasses_woman", "sunglasses_beard",
                                           "surgical_mask_man", "watch_over_nose")]
    assert overlays == sorted(real + [f"synthetic_{Path(FACE).stem}_{k}_auto.png" for k in KINDS])
    for name in ("glasses_woman", "watch_over_nose"):
        ov = cv2.imread(str(out / "overlays" / f"real_{name}_auto.png"))
        h, w = cv2.imread(str(IMAGES / "occluded" / f"{name}.jpg")).shape[:2]
        assert max(ov.shape[:2]) >= min(max(h, w), 384) and abs(ov.shape[0] / ov.shape[1] - h / w) < 0.01


def test_evaluate_inputs_refuses_a_folder_without_faces(tmp_path):
    out = tmp_path / "report"
    res = subprocess.run([D3DFACE, "evaluate-inputs", "--images", tmp_path, "--out", out], capture_output=True, text=True)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("d3dface: error:") and "faces/" in lines[0]
    assert not out.exists()
