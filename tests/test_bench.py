"""``d3dface bench --quick --json``: every measurement is there with a finite median."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

D3DFACE = Path(sys.executable).parent / "d3dface"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

EXPECTED = ["render_fwd_bwd_224", "render_fwd_bwd_512", "fit", "vae_encode_b1", "vae_encode_b16", "vae_decode_b1",
            "vae_decode_b16", "dpp_step_m8", "dpp_step_m16", "dpp_step_m32", "reconstruct_m8_256", "blender_keys_16"]


@pytest.mark.skipif(not (SHARED / "images" / "occluded" / "glasses_woman.jpg").is_file(), reason="needs ../shared/images")
def test_bench_quick_json(tmp_path):
    out = tmp_path / "bench.json"
    p = subprocess.run([D3DFACE, "bench", "--quick", "--repeats", "1", "--device", "cpu", "--threads", "1", "--json", str(out),
                        "--addon-dir", Path(__file__).resolve().parents[1]],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(out.read_text())
    m = d["measurements"]
    assert sorted(m) == sorted(EXPECTED)
    for name in EXPECTED:
        if name == "blender_keys_16" and "skipped" in m[name]:
            continue  # no bpy in this Python: skipped with a note
        r = m[name]
        assert math.isfinite(r["median"]) and r["median"] > 0, name
        assert r["unit"] in ("ms", "s") and len(r["times"]) == r["repeats"] >= 1, name
        assert math.isfinite(r["peak_rss_mb"]) and r["peak_rss_mb"] > 0, name
    assert m["render_fwd_bwd_224"]["pytorch3d"]  # "not installed" or a ratio
    assert m["fit"]["iterations_per_s"] > 0
    assert m["reconstruct_m8_256"]["cold_s"] >= m["reconstruct_m8_256"]["load_s"] > 0
    assert [b["status"] for b in d["budgets"]] == ["n/a (quick run)"] * 4  # budgets are for full runs
    assert "budgets:" in p.stdout and "reconstruct_m8_256" in p.stdout
