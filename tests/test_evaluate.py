"""``d3dface evaluate --quick``: the paper's Table 2 protocol on a few synthetic faces, with the
orderings the method promises (its full run's numbers are in the README)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

D3DFACE = Path(sys.executable).parent / "d3dface"


METHODS = ("global+dpp", "global_local+dpp", "vae", "vae+dpp", "gaussian+dpp", "product")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """``evaluate --quick --workers 2``'s output folder and its overall rows {method: {column: value}}
    (two worker processes: the faces are independent, and CI has two cores)."""
    out = tmp_path_factory.mktemp("quick") / "eval"
    res = subprocess.run([D3DFACE, "evaluate", "--quick", "--workers", "2", "--device", "cpu", "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = {(r["method"], r["occluder"]): {k: float(v) for k, v in r.items() if k.endswith("mm") or k == "asd_ratio"}
            for r in csv.DictReader(open(out / "table.csv"))}
    return out, {m: rows[(m, "overall")] for m in METHODS}


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-03 with the Mesh-VAE retrained on the seated-eye template (issue 21): vae+dpp "
    "ASD-O 0.63 mm against the posterior's 0.47 (1.3x; the ASD ratio still doubles); issue 17 owns the VAE"))
def test_the_dpp_doubles_the_vaes_hidden_spread(quick):
    _, overall = quick
    assert overall["vae+dpp"]["asd_o_mm"] > 2 * overall["vae"]["asd_o_mm"]


def test_quick_evaluation_orders_the_methods(quick):
    out, overall = quick
    assert {p.name for p in out.iterdir()} == {"table.md", "table.csv", "rows.json", "chart.png"}
    # the completions closest to the truth are better than the global-model baseline's
    for m in ("vae+dpp", "gaussian+dpp"):
        assert overall[m]["cse_mm"] < overall["global+dpp"]["cse_mm"], m
    # the DPP spreads the hidden part more than sampling the VAE's posterior does
    assert overall["vae+dpp"]["asd_ratio"] > 1.5 * overall["vae"]["asd_ratio"]
    # the region prior keeps to the fit where seen and varies the hidden part: a higher ratio
    assert overall["gaussian+dpp"]["asd_v_mm"] < 0.5 * overall["vae+dpp"]["asd_v_mm"]
    assert overall["gaussian+dpp"]["asd_ratio"] > 2 * overall["vae+dpp"]["asd_ratio"]
    # the closest of M is closer than one sample
    assert overall["gaussian+dpp"]["cse_mm"] < overall["gaussian+dpp"]["cse1_mm"]
    # the product's samples (joined) agree with the fit where the face is seen
    assert overall["product"]["asd_v_mm"] < 0.1 * overall["vae+dpp"]["asd_v_mm"]
    assert "Table 1" in (out / "table.md").read_text()


def test_evaluate_photos_reports_diversity_and_creases(tmp_path):
    """``evaluate-photos`` on a folder of one real photo with its hand-drawn mask: a row with the
    product's and the raw samples' ASD and creases, numbers recomputed here from the result file."""
    import shutil

    import numpy as np

    from d3dface.evaluation.metrics import creased_edges, diversity_metrics
    from d3dface.head_model import load_head_model

    from conftest import IMAGES

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("glasses_woman.jpg", "glasses_woman_mask.png"):
        shutil.copy2(IMAGES / "occluded" / name, photos / name)
    out = tmp_path / "eval"
    res = subprocess.run([D3DFACE, "evaluate-photos", "--images", photos, "--samples", "3", "--out", out],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    row = next(line for line in (out / "photos.md").read_text().splitlines() if line.startswith("| glasses_woman.jpg"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "given" and 10 < float(cells[-2]) < 60   # the glasses hide about a quarter of the face
    d = np.load(out / "glasses_woman" / "result.npz")
    face = load_head_model().regions["face"]
    product = diversity_metrics(d["samples"], d["occluded"], region=face)
    raw = diversity_metrics(d["samples_raw"], d["occluded"], region=face)
    assert float(cells[2]) == round(product.asd_v, 2) and float(cells[3]) == round(product.asd_o, 2)
    assert float(cells[6]) == round(raw.asd_v, 2) and float(cells[7]) == round(raw.asd_o, 2)
    creased = creased_edges(d["samples"], d["fit_vertices"], d["faces"], face).mean()
    assert float(cells[5]) == round(float(creased), 1)
    assert product.asd_v < 1e-3 < raw.asd_v  # joined to the fit where seen
