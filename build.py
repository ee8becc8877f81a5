#!/usr/bin/env python3.11
"""Project tasks, runnable with a bare Python 3.11 (no dependencies needed to start).

    python3.11 build.py demo     # set up everything, then run the main job on the embedded default
    python3.11 build.py test     # set up everything, then run the whole test suite, end-to-end paths included
                                 # (pytest args may follow; --fast leaves out the end-to-end cases)
    python3.11 build.py setup    # only create/refresh .venv and check the shipped model files
    python3.11 build.py models     # rebuild the shipped default model files from ../shared (maintainers)
    python3.11 build.py wheel      # the engine wheel in wheels/
    python3.11 build.py extension  # dist/d3dface-VERSION-linux-x64.zip: the Blender extension with its wheels
                                   # (--engine-only: the engine wheel alone, for an external engine Python;
                                   # --quick-pack: LZMA preset 1, 8x faster and ~13% larger, as the tests build it)

The environment is one virtual environment, ``.venv``, holding the engine (editable),
its dependencies and bpy 5.0.1 for headless Blender tests. Setup is idempotent: it
re-installs only when requirements.txt or engine/pyproject.toml change.

The default head model and its local region models ship in ``engine/d3dface/data/``
(committed, like the Mesh-VAE trained for them): a rebuild on another CPU differs in the
last bits, so setup never rebuilds them, and every machine runs the same files.
``tests/test_shipped_models.py`` checks that a rebuild from ../shared reproduces them
within a stated tolerance.

A failed step is one line, ``build.py: error: ...``, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".d3dface-setup-stamp"
DATA = ROOT / "engine" / "d3dface" / "data"
OPEN_MODEL = DATA / "open_head_model.npz"
SHIPPED_DATA = [OPEN_MODEL, DATA / "mesh_vae_open.pt", DATA / "occlusion_net.pt"]  # + the local model named after the open model's hash
DEMO_OUT = ROOT / "out" / "demo"


class StepFailed(Exception):
    """A build step that failed: its one-line message is what the user sees."""


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log(" ".join(str(c) for c in cmd))
    try:
        subprocess.run([str(c) for c in cmd], check=True, cwd=kw.pop("cwd", ROOT), **kw)
    except subprocess.CalledProcessError as exc:
        raise StepFailed(f"{_step_name(cmd)} failed with exit code {exc.returncode} (its output is above)") from None
    except OSError as exc:
        raise StepFailed(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None


def _step_name(cmd) -> str:
    return " ".join(Path(str(c)).name if i == 0 else str(c) for i, c in enumerate(cmd[:3]))


def _setup_hash() -> str:
    h = hashlib.sha256()
    for p in (ROOT / "requirements.txt", ROOT / "engine" / "pyproject.toml"):
        h.update(p.read_bytes())
    return h.hexdigest()


def setup() -> None:
    t0 = time.time()
    if sys.version_info[:2] != (3, 11):
        log(f"warning: Blender 5.0 uses Python 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        run([sys.executable, "-m", "venv", VENV])
    if not STAMP.exists() or STAMP.read_text() != _setup_hash():
        run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", ROOT / "requirements.txt"])
        run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", ROOT / "engine"])
        STAMP.write_text(_setup_hash())
    else:
        log(".venv is up to date")
    check_shipped_data()
    log(f"setup done in {time.time() - t0:.1f} s")


def check_shipped_data() -> None:
    """The committed model files are there (a checkout without them is incomplete)."""
    missing = [p for p in SHIPPED_DATA if not p.is_file()]
    if not list(DATA.glob("local_model_*.npz")):
        missing.append(DATA / "local_model_*.npz")
    if missing:
        raise StepFailed(f"shipped model file missing: {missing[0].relative_to(ROOT)} (an incomplete checkout? "
                         "'git checkout -- engine/d3dface/data', or 'python3.11 build.py models' to rebuild)")


def rebuild_models() -> None:
    """Rebuild the shipped default head model, its local models and the MediaPipe embedding from
    ../shared (maintainers: after a change of a builder; the Mesh-VAE must then be retrained for
    the new model)."""
    setup()
    d3dface = VENV / "bin" / "d3dface"
    for old in DATA.glob("local_model_*.npz"):
        old.unlink()
    run([d3dface, "build-open-model", "--out", OPEN_MODEL])
    run([d3dface, "build-local-model"])
    run([d3dface, "build-embedding"])


DEMO_IMAGE = ROOT.parent / "shared" / "images" / "occluded" / "glasses_woman.jpg"
DEMO_MASK = ROOT.parent / "shared" / "images" / "occluded" / "glasses_woman_mask.png"


def demo() -> None:
    """The main job on the embedded default: 8 diverse completions of an occluded photo."""
    setup()
    t0 = time.time()
    d3dface = VENV / "bin" / "d3dface"
    run([d3dface, "info"])
    run([d3dface, "reconstruct", DEMO_IMAGE, "--mask", DEMO_MASK, "--samples", "8", "--seed", "0", "--out", DEMO_OUT])
    run([PY, ROOT / "scripts" / "write_blend.py", DEMO_OUT / "result.npz", DEMO_OUT / "result.blend"])
    log(f"demo done in {time.time() - t0:.1f} s; outputs in {DEMO_OUT}")


# ---- packaging: the engine wheel and the Blender extension (DESIGN 3.2) ----------------------
WHEELS = ROOT / "wheels"
DIST = ROOT / "dist"
STAGE = ROOT / "build" / "extension"
ADDON = ROOT / "d3dface_addon"
MANIFEST = ROOT / "blender_manifest.toml"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"  # Blender 5.0 on Linux x86-64: Python 3.11
# What the extension bundles besides the engine wheel so that a stock Blender 5.0 (which ships
# numpy 1.26) runs a CPU reconstruction with nothing else installed: what a reconstruction
# imports (checked by running one with these wheels alone, tests/test_addon_package.py), pinned
# to the versions of .venv (the tested set). torch needs sympy and mpmath (its optimisers import
# torch._dynamo); MediaPipe needs attrs and protobuf, and matplotlib with what `import
# matplotlib.pyplot` loads (its drawing_utils, imported by `mediapipe`). Left out because no
# reconstruction imports them: numpy (Blender's), torch's filelock, networkx, jinja2, markupsafe
# and fsspec (torch.compile, hub), MediaPipe's absl-py, flatbuffers, jax, jaxlib, sentencepiece
# and sounddevice (its tasks API and tests), matplotlib's contourpy and tzdata (contour plots,
# time zones), face-alignment (its weights cannot be downloaded). opencv-python-headless is the
# one cv2: the engine's and MediaPipe's calls are all in the main module (no contrib), and
# without the GUI it is 19 MB smaller.
BUNDLED = [
    "torch", "typing_extensions", "sympy", "mpmath",
    "scipy", "trimesh", "opencv-python-headless", "tqdm", "pillow",
    "mediapipe", "attrs", "protobuf",
    "matplotlib", "cycler", "fonttools", "kiwisolver", "packaging", "pyparsing", "python-dateutil", "six",
]  # (those not installed in .venv, e.g. six for a dateutil that no longer needs it, are skipped)
# Bundled under another name than .venv's: the version is that of the named .venv distribution
# (opencv-python, opencv-contrib-python and opencv-python-headless are builds of one release).
VERSION_FROM = {"opencv-python-headless": "opencv-python"}
# The zip ships a copy of each bundled third-party wheel (DESIGN 3.2; the engine wheel as built):
# every file recompressed with LZMA (the zip method Python's zipfile reads, so Blender's wheel
# installer and pip do too; the installed files are byte for byte the same), without the files
# below, which no reconstruction reads: torch's C++ test programs, headers and build tools,
# test suites, and MediaPipe's models of solutions other than the face mesh. A build tag in the
# name (and in WHEEL) marks the copy: when another extension ships the unmodified wheel of the
# same release, Blender's de-duplication prefers that one (a higher name at an equal version).
BUNDLE_BUILD_TAG = "1d3dface"
BUNDLE_DROP = {
    "torch": ("torch/test/*", "torch/include/*", "torch/share/cmake/*", "torch/bin/test_*", "torch/bin/*Test",
              "torch/bin/protoc*", "torch/bin/*.pt", "torch/bin/*.ptl", "torch/bin/upgrader_models/*",
              "torch/lib/libtorchbind_test.so", "torch/lib/libjitbackend_test.so",
              "torch/lib/libbackend_with_compiler.so", "torch/lib/libaoti_custom_ops.so"),
    "scipy": ("scipy/*/tests/*",),
    "sympy": ("sympy/*/tests/*",),
    "mpmath": ("mpmath/tests/*",),
    "matplotlib": ("matplotlib/tests/*", "mpl_toolkits/*/tests/*"),
    # the models and graphs of the other solutions (their Python modules stay: `import mediapipe`
    # imports them all)
    "mediapipe": tuple(f"mediapipe/modules/{m}/*.{ext}" for m in (
        "hand_landmark", "palm_detection", "pose_landmark", "pose_detection", "iris_landmark",
        "selfie_segmentation", "holistic_landmark", "objectron") for ext in ("tflite", "binarypb")) + ("mediapipe/*_test.py",),
}
BUNDLE_COPIES = ROOT / "build" / "bundle-wheels"
# LZMA presets of the bundled copies: the release zip (preset 6: torch alone takes about 14 minutes
# of one core here) and the quick pack the tests build (preset 1: about 2 minutes, ~13% larger)
LZMA_PRESET_RELEASE, LZMA_PRESET_QUICK = 6, 1
ZIP_BUDGET_BYTES = 200e6  # the release zip
QUICK_PACK_OVERHEAD = 1.15  # quick-pack zip / release zip, measured 1.13 on torch's largest library


def engine_version() -> str:
    import re

    text = (ROOT / "engine" / "d3dface" / "__init__.py").read_text()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def blender_ext_tool() -> Path:
    """Blender's extension tool, shipped inside the bpy wheel."""
    out = subprocess.run([str(PY), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    tool = Path(out) / "bpy" / "5.0" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        raise StepFailed(f"Blender's extension tool not found at {tool} (is bpy==5.0.1 in .venv?)")
    return tool


def build_wheel() -> Path:
    """The engine wheel (with its shipped data: default head model, local model, Mesh-VAE) in wheels/."""
    setup()
    WHEELS.mkdir(exist_ok=True)
    for old in WHEELS.glob("d3dface-*.whl"):
        old.unlink()
    run([PY, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", WHEELS, ROOT / "engine"])
    shutil.rmtree(ROOT / "engine" / "build", ignore_errors=True)
    wheel = next(WHEELS.glob(f"d3dface-{engine_version()}-*.whl"))
    log(f"engine wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB)")
    return wheel


def _venv_versions(names: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "v = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: v[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))")
    out = subprocess.run([str(PY), "-c", code, *names], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def _downloaded(name: str, version: str) -> list[Path]:
    return [p for p in WHEELS.glob("*.whl") if _norm(p.name.split("-")[0]) == _norm(name) and p.name.split("-")[1] == version]


def gather_runtime_wheels() -> list[Path]:
    """Binary wheels for Linux x86-64 / CPython 3.11 of everything in BUNDLED (versions of .venv),
    downloaded into wheels/ once."""
    venv = _venv_versions(sorted({VERSION_FROM.get(n, n) for n in BUNDLED}))
    pins = {n: venv[VERSION_FROM.get(n, n)] for n in BUNDLED if VERSION_FROM.get(n, n) in venv}
    missing = [f"{n}=={v}" for n, v in pins.items() if not _downloaded(n, v)]
    if missing:
        run([PY, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
             "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
             "--platform", WHEEL_PLATFORM, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
             "--platform", "linux_x86_64", "--platform", "any", "-d", WHEELS, *missing])
    wheels = []
    for n, v in pins.items():
        found = sorted(_downloaded(n, v))
        if len(found) != 1:
            raise StepFailed(f"expected one wheel of {n}=={v} in wheels/, found {len(found)}"
                             f"{': ' + ', '.join(p.name for p in found) if found else ''}")
        wheels.append(found[0])
    return sorted(wheels)


def _bundle_name(wheel: Path) -> str:
    """The copy's file name: the build tag in the wheel name's third field."""
    parts = wheel.name.removesuffix(".whl").split("-")
    return "-".join([*parts[:2], BUNDLE_BUILD_TAG, *parts[-3:]]) + ".whl"


def _record_hash(data: bytes) -> str:
    import base64

    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _repack_members(src: Path, out, drop: tuple[str, ...]) -> int:
    """Write src's members into the open ZipFile ``out``, LZMA-compressed, without ``drop``;
    WHEEL gains the build tag and RECORD follows (rows of left-out files removed). The number left out."""
    import fnmatch
    import zipfile

    with zipfile.ZipFile(src) as zin:
        infos = zin.infolist()
        left_out = {i.filename for i in infos if any(fnmatch.fnmatchcase(i.filename, p) for p in drop)}
        dist_info = next(i.filename.split("/")[0] for i in infos if i.filename.endswith(".dist-info/WHEEL"))
        wheel_meta = zin.read(f"{dist_info}/WHEEL").decode()
        wheel_meta = "".join(l for l in wheel_meta.splitlines(True) if not l.startswith("Build:"))
        wheel_meta = (wheel_meta.rstrip("\n") + f"\nBuild: {BUNDLE_BUILD_TAG}\n").encode()
        rows = []
        for line in zin.read(f"{dist_info}/RECORD").decode().splitlines():
            path = line.split(",")[0]
            if path == f"{dist_info}/WHEEL":
                line = f"{path},{_record_hash(wheel_meta)},{len(wheel_meta)}"
            if path not in left_out:
                rows.append(line)
        record = ("\n".join(rows) + "\n").encode()
        for info in infos:
            if info.filename in left_out:
                continue
            data = {f"{dist_info}/WHEEL": wheel_meta, f"{dist_info}/RECORD": record}.get(info.filename)
            if data is None:
                data = zin.read(info)
            new = zipfile.ZipInfo(info.filename, info.date_time)
            new.external_attr = info.external_attr
            # already-compressed data (models, archives) gains nothing from LZMA: stored
            stored = info.file_size == 0 or info.compress_size >= 0.97 * info.file_size
            new.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_LZMA
            out.writestr(new, data)
    return len(left_out)


def _use_lzma_preset(preset: int) -> None:
    """Make zipfile's ZIP_LZMA encoder use ``preset`` (in this process). The member's header carries
    the preset's properties (dictionary size, lc/lp/pb), all a decoder reads, so any zip reader
    unpacks it; zipfile's own encoder is preset 6."""
    import lzma
    import struct
    import zipfile

    class PresetLZMACompressor(zipfile.LZMACompressor):
        def _init(self):
            filters = {"id": lzma.FILTER_LZMA1, "preset": preset}
            props = lzma._encode_filter_properties(filters)
            self._comp = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[filters])
            return struct.pack("<BBH", 9, 4, len(props)) + props

    zipfile.LZMACompressor = PresetLZMACompressor


def _make_bundle_copy(job: tuple[str, str, str, int]) -> tuple[str, int]:
    """One bundled copy (in a worker process): written under a temporary name, then renamed."""
    import zipfile

    src, dst, stamp = map(Path, job[:3])
    _use_lzma_preset(job[3])
    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as out:
        n = _repack_members(src, out, BUNDLE_DROP.get(_norm(src.name.split("-")[0]), ()))
    os.replace(tmp, dst)
    stamp.write_text(_bundle_key(src, job[3]))
    return dst.name, n


def _bundle_key(src: Path, preset: int) -> str:
    packing = "lzma-1" if preset == LZMA_PRESET_RELEASE else f"lzma-1-preset-{preset}"  # recipe 1 at zipfile's preset 6
    recipe = json.dumps([BUNDLE_BUILD_TAG, BUNDLE_DROP.get(_norm(src.name.split("-")[0]), ()), packing])
    return f"{src.name} {src.stat().st_size} {hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def bundle_copies(wheels: list[Path], preset: int = LZMA_PRESET_RELEASE) -> list[Path]:
    """The copies of ``wheels`` the zip ships (see BUNDLE_DROP), made in build/bundle-wheels[-quick]/
    once per source wheel and recipe (the first build takes minutes: LZMA on 1 GB of libraries)."""
    try:
        import lzma  # noqa: F401  (zipfile's LZMA needs it)
    except ImportError:
        raise StepFailed(f"this Python ({sys.executable}) has no lzma module, needed to pack the bundled wheels") from None
    copies = BUNDLE_COPIES if preset == LZMA_PRESET_RELEASE else BUNDLE_COPIES.with_name(BUNDLE_COPIES.name + "-quick")
    copies.mkdir(parents=True, exist_ok=True)
    out, jobs = [], []
    for w in wheels:
        dst = copies / _bundle_name(w)
        stamp = dst.with_name(dst.name + ".src")
        if not (dst.is_file() and stamp.is_file() and stamp.read_text() == _bundle_key(w, preset)):
            jobs.append((str(w), str(dst), str(stamp), preset))
        out.append(dst)
    if jobs:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        t0 = time.time()
        jobs.sort(key=lambda j: -Path(j[0]).stat().st_size)  # the largest first: torch alone takes most of it
        log(f"packing {len(jobs)} bundled wheel(s) into {copies.relative_to(ROOT)}/ (LZMA preset {preset}; minutes for torch)")
        source = "a wheel"
        try:
            with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
                futures = {pool.submit(_make_bundle_copy, j): Path(j[0]).name for j in jobs}
                for done in as_completed(futures):
                    source = futures[done]
                    name, n = done.result()
                    log(f"  {name}" + (f" ({n} files left out)" if n else ""))
        except Exception as exc:  # a bad download or a full disk, from a worker process: one line
            raise StepFailed(f"cannot pack {source} for the extension: {type(exc).__name__}: {exc}") from None
        log(f"bundled wheels packed in {time.time() - t0:.0f} s")
    keep = set(out) | {p.with_name(p.name + ".src") for p in out}
    for p in copies.iterdir():
        if p.is_file() and p not in keep:
            p.unlink()  # copies of wheels no longer bundled, or left by an interrupted build
    return out


def _manifest_text(wheels: list[Path]) -> str:
    import re

    text = MANIFEST.read_text()
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{engine_version()}"', text)
    listed = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    return re.sub(r"(?m)^wheels = \[.*?\]$", f"wheels = [\n{listed},\n]", text, flags=re.S)


def build_extension(engine_only: bool = False, quick_pack: bool = False) -> Path:
    """Stage the add-on with its wheels, pack it with Blender's tool into dist/, validate it. The
    release zip (not ``quick_pack``) must fit ZIP_BUDGET_BYTES, else the build fails."""
    wheel = build_wheel()
    preset = LZMA_PRESET_QUICK if quick_pack else LZMA_PRESET_RELEASE
    runtime = [] if engine_only else bundle_copies(gather_runtime_wheels(), preset)
    wheels = [wheel, *runtime]
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "wheels").mkdir(parents=True)
    for f in ADDON.glob("*.py"):
        shutil.copy2(f, STAGE / f.name)
    for w in wheels:
        os.link(w, STAGE / "wheels" / w.name) if w.stat().st_dev == STAGE.stat().st_dev else shutil.copy2(w, STAGE / "wheels")
    (STAGE / "blender_manifest.toml").write_text(_manifest_text(wheels))
    DIST.mkdir(exist_ok=True)
    suffix = "engine-only" if engine_only else "linux-x64"
    out = DIST / f"d3dface-{engine_version()}-{suffix}.zip"
    if out.exists():
        out.unlink()
    tool = blender_ext_tool()
    run([PY, tool, "build", "--source-dir", STAGE, "--output-filepath", out])
    run([PY, tool, "validate", out])
    size = out.stat().st_size
    log(f"extension: {out} ({size / 1e6:.1f} MB, {len(wheels)} wheels)")
    if not engine_only and not quick_pack and size > ZIP_BUDGET_BYTES:
        raise StepFailed(f"the extension zip is {size / 1e6:.1f} MB, over the {ZIP_BUDGET_BYTES / 1e6:.0f} MB budget")
    return out


TEST_WORKERS = 2  # more would multiply the memory of torch + bpy per worker for little gain on CI's 2 cores


def test(pytest_args: list[str]) -> int:
    """The whole suite, the end-to-end paths users run included (``--fast``: without them).
    Skipped cases are listed with their reasons at the end (-rs). Two pytest-xdist workers share the
    test files (a file's tests stay in one worker, so its fixtures are built once) where the machine
    has two cores or more: on 2 cores the suite took 12.8-15.0 min against 16.4 min in one process.
    Passing ``-n`` yourself overrides it (``-n 0``: one process)."""
    setup()
    fast = "--fast" in pytest_args
    args = [a for a in pytest_args if a != "--fast"]
    if not fast:
        args.insert(0, "--run-slow")
    if not any(a.startswith(("-n", "--numprocesses")) for a in args) and (os.cpu_count() or 1) >= 2:
        args[:0] = ["-n", str(TEST_WORKERS), "--dist", "loadfile"]
    return subprocess.run([str(PY), "-m", "pytest", "tests", "-rs", *args], cwd=ROOT, env=dict(os.environ)).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["setup", "demo", "test", "models", "wheel", "extension"])
    args, rest = parser.parse_known_args()
    try:
        if args.task == "setup":
            setup()
        elif args.task == "demo":
            demo()
        elif args.task == "test":
            return test(rest)
        elif args.task == "models":
            rebuild_models()
        elif args.task == "wheel":
            build_wheel()
        elif args.task == "extension":
            build_extension(engine_only="--engine-only" in rest, quick_pack="--quick-pack" in rest)
    except StepFailed as exc:
        print(f"build.py: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"build.py: error: {_step_name(exc.cmd)} failed with exit code {exc.returncode}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"build.py: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("build.py: error: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
