"""``d3dface evaluate --quick``: the paper's Table 2 protocol on a few synthetic faces, with the
orderings the method promises (its full run's numbers are in the README)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

D3DFACE = Path(sys.executable).parent / "d3dface"


def test_quick_evaluation_orders_the_methods(tmp_path):
    out = tmp_path / "eval"
    res = subprocess.run([D3DFACE, "evaluate", "--quick", "--device", "cpu", "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in out.iterdir()} == {"table.md", "table.csv", "rows.json", "chart.png"}
    rows = {(r["method"], r["occluder"]): {k: float(v) for k, v in r.items() if k.endswith("mm") or k == "asd_ratio"}
            for r in csv.DictReader(open(out / "table.csv"))}
    overall = {m: rows[(m, "overall")] for m in ("global+dpp", "global_local+dpp", "vae", "ours", "ours+stitch")}
    # the completion closest to the truth is better than the global-model baseline's
    assert overall["ours"]["cse_mm"] < overall["global+dpp"]["cse_mm"]
    # the DPP spreads the hidden part more than sampling the VAE's posterior does
    assert overall["ours"]["asd_ratio"] > 1.5 * overall["vae"]["asd_ratio"]
    assert overall["ours"]["asd_o_mm"] > 2 * overall["vae"]["asd_o_mm"]
    # stitched samples agree with the fit where the face is seen
    assert overall["ours+stitch"]["asd_v_mm"] < 0.1 * overall["ours"]["asd_v_mm"]
    assert "Table 1" in (out / "table.md").read_text()
