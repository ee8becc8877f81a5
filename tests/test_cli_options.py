"""One consistent command line: every option documented, enumerated options with their
choices, ``--out`` never positional, ``--json FILE`` everywhere (``-`` = standard output)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from d3dface.cli.main import build_parser, main

D3DFACE = Path(sys.executable).parent / "d3dface"

ENUMERATED = {"--device", "--backend", "--mode"}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _actions(p: argparse.ArgumentParser):
    return [a for a in p._actions if not isinstance(a, argparse._HelpAction)]


def _name(a: argparse.Action) -> str:
    return a.option_strings[-1] if a.option_strings else a.dest


COMMANDS = sorted(_subcommands())


def test_the_walk_sees_every_command():
    assert {"info", "bench", "fit", "evaluate", "evaluate-fit", "train-vae", "evaluate-vae", "landmarks",
            "reconstruct"} <= set(COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_option_is_documented_and_consistent(cmd):
    p = _subcommands()[cmd]
    problems = []
    for a in _actions(p):
        name = _name(a)
        if not (isinstance(a.help, str) and a.help.strip()) or a.help == argparse.SUPPRESS:
            problems.append(f"{name}: no help")
        if set(a.option_strings) & ENUMERATED and not a.choices:
            problems.append(f"{name}: no choices")
        if not a.option_strings and a.dest == "out":
            problems.append("positional 'out' (use --out)")
        if "--json" in a.option_strings and a.nargs == 0:
            problems.append("--json is a flag (it takes FILE, '-' for standard output)")
    assert not problems, f"{cmd}: " + "; ".join(problems)
    assert p.format_help()  # every help string formats (no stray % in it)


def test_device_choices_keep_cuda_index():
    p = _subcommands()["evaluate"]
    assert p.parse_args(["--device", "cuda:1", "--out", "x"]).device == "cuda:1"
    assert p.parse_args(["--out", "x"]).device == "auto"
    with pytest.raises(SystemExit):
        p.parse_args(["--device", "gpu", "--out", "x"])


def test_train_vae_takes_out_option():
    p = _subcommands()["train-vae"]
    assert p.parse_args(["--out", "run"]).out == "run"
    with pytest.raises(SystemExit):
        p.parse_args(["run"])  # the old positional OUT
    with pytest.raises(SystemExit):
        p.parse_args([])  # --out is required


def test_evaluate_quick_with_n_is_an_error(tmp_path, capsys):
    assert main(["evaluate", "--quick", "--n", "5", "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--quick" in err[0] and "--n" in err[0]
    assert not (tmp_path / "never").exists()


def test_evaluate_fit_n_is_per_occluder_type(monkeypatch, capsys):
    import d3dface.cli.cmd_fit as cmd_fit
    import d3dface.evaluation.fit_eval as fit_eval
    from d3dface.evaluation.synthetic_faces import OCCLUDER_TYPES

    seen = {}

    class Ev:
        def markdown(self):
            return "table"

    def fake_evaluate_fit(model, local, n, **kw):
        seen["n"] = n
        return Ev()

    monkeypatch.setattr(cmd_fit, "load_head_model", lambda *a, **k: None)
    monkeypatch.setattr(cmd_fit, "load_or_build_local_model", lambda *a, **k: None)
    monkeypatch.setattr(cmd_fit, "mean_texture_path", lambda *a, **k: None)
    monkeypatch.setattr(fit_eval, "evaluate_fit", fake_evaluate_fit)
    assert main(["evaluate-fit", "--n", "2"]) == 0
    assert seen["n"] == 2 * len(OCCLUDER_TYPES)
    assert main(["evaluate-fit"]) == 0
    assert seen["n"] == 17 * len(OCCLUDER_TYPES)  # about the 50 in all of the former default


def test_info_json_to_stdout():
    res = subprocess.run([D3DFACE, "info", "--json", "-"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["vertices"] == 5023


def test_info_json_to_file(tmp_path, capsys):
    out = tmp_path / "sub" / "info.json"
    assert main(["info", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["vertices"] == 5023
    assert "vertices:   5023" in capsys.readouterr().out  # the text summary still goes to the terminal


def test_bench_addon_dir_is_checked_and_optional(tmp_path, capsys):
    from d3dface.bench.runner import run_blender

    assert main(["bench", "--addon-dir", str(tmp_path)]) == 2  # fails before any timing
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--addon-dir" in err[0]
    assert "--addon-dir" in run_blender(16, 1, 1, None)["skipped"]


def test_evaluate_expressions_refuses_a_negative_identity_count(tmp_path, capsys):
    out = tmp_path / "checks.json"
    assert main(["evaluate-expressions", "--identities", "-1", "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["d3dface: error: --identities must be 0 or more, got -1"] and not out.exists()


@pytest.mark.parametrize("args, word", [(["--photometric", "5"], "vae completion only"),
                                        (["--photometric", "-1", "--completion", "vae"], "0 or more")])
def test_reconstruct_refuses_a_photometric_weight_it_cannot_use(tmp_path, capsys, args, word):
    from conftest import IMAGES

    out = tmp_path / "never"
    assert main(["reconstruct", str(IMAGES / "occluded" / "glasses_woman.jpg"), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0] and "photometric" in err[0], err
    assert not out.exists()


def test_evaluate_refuses_a_negative_photometric_weight(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["evaluate", "--quick", "--photometric", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--photometric" in err[0] and not out.exists()
