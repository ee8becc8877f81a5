"""The command line: help, version, info, pose, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from d3dface import __version__
from d3dface.cli.main import main
from d3dface.outputs.mesh_files import read_mesh_vertices

from flame_fixture import synthetic_flame_arrays, write_flame_pickle

D3DFACE = Path(sys.executable).parent / "d3dface"


def test_console_script_help_and_version():
    out = subprocess.run([D3DFACE, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"d3dface {__version__}"
    out = subprocess.run([D3DFACE, "--help"], capture_output=True, text=True, check=True)
    for cmd in ("info", "pose"):
        assert cmd in out.stdout


def test_info_on_flame_assets(flame_dir, capsys):
    assert main(["info", str(flame_dir)]) == 0
    text = capsys.readouterr().out
    assert "vertices:   5023" in text
    assert "faces:      9976" in text
    assert "regions:    14" in text
    assert "landmarks:  68 (68-point), 478 (MediaPipe)" in text  # our shipped embedding, attached on load


def test_info_json_on_flame_pickle(tmp_path, flame_dir, capsys):
    pkl = write_flame_pickle(tmp_path / "generic_model.pkl", synthetic_flame_arrays(flame_dir))
    assert main(["info", str(pkl), "--assets", str(flame_dir.parent), "--json", "-"]) == 0
    import json

    s = json.loads(capsys.readouterr().out)
    assert (s["vertices"], s["faces"], s["shape_components"], s["expression_components"], s["joints"]) == (5023, 9976, 300, 100, 5)


def _run_cli(*args):
    return subprocess.run([D3DFACE, *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("kind", ["missing", "text", "wrong_topology"])
def test_bad_models_exit_nonzero_with_one_line(kind, tmp_path, flame_dir):
    if kind == "missing":
        path, expect = tmp_path / "nope.pkl", "not found"
    elif kind == "text":
        path, expect = tmp_path / "model.pkl", "not a FLAME pickle"
        path.write_text("definitely not a pickle")
    else:
        path, expect = tmp_path / "small.pkl", "vertices"
        write_flame_pickle(path, synthetic_flame_arrays(flame_dir, num_vertices_keep=3000))
    res = _run_cli("info", path, "--assets", flame_dir.parent)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("d3dface: error:") and expect in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_pose_writes_obj_with_uvs_and_the_rotation_asked_for(tmp_path, flame_dir, topology):
    out = tmp_path / "sub" / "head.obj"
    assert main(["pose", "--model", str(flame_dir), "--yaw", "90", "--out", str(out)]) == 0
    v, f = read_mesh_vertices(out)
    assert v.shape == (5023, 3) and f.shape == (9976, 3)
    # 90 degrees about y maps (x, y, z) -> (z, y, -x): check against the template directly
    t = topology.v_template
    np.testing.assert_allclose(v, np.stack([t[:, 2], t[:, 1], -t[:, 0]], 1), atol=1e-5)
    assert sum(1 for line in out.read_text().splitlines() if line.startswith("vt ")) == 5118
    assert [p.name for p in out.parent.iterdir()] == ["head.obj"]


def test_pose_jaw_needs_joints(tmp_path, flame_dir):
    res = _run_cli("pose", "--model", flame_dir, "--jaw", "10", "--out", tmp_path / "x.obj")
    assert res.returncode != 0 and "joints" in res.stderr and not (tmp_path / "x.obj").exists()
