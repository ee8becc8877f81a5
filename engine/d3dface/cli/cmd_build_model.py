"""``d3dface build-open-model``: build the open default head model from ICT-FaceKit Light and
the FLAME topology assets; ``d3dface build-embedding``: derive the 478-point MediaPipe embedding."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..head_model.flame_assets import check_flame_assets_dir
from ..head_model.landmark_embedding import SHIPPED_EMBEDDING
from ..head_model.load import DEFAULT_MODEL_FILE
from ..head_model.open_model import build_open_model
from ..head_model.open_model.ict_source import load_ict
from ..paths import find_assets_dir
from .common import ASSETS_HELP, StageProgress


def register(sub) -> None:
    p = sub.add_parser("build-open-model", help="build the open default head model (ICT-FaceKit Light on FLAME topology)")
    p.add_argument("--ict", help="ICT-FaceKit folder (default: <assets>/ict-facekit)")
    p.add_argument("--flame-assets", help="FLAME topology folder (default: <assets>/flame)")
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--out", default=str(DEFAULT_MODEL_FILE), help="output .npz (default: %(default)s)")
    p.set_defaults(run=run)
    register_embedding(sub)


def run(args) -> int:
    assets = None if (args.ict and args.flame_assets) else find_assets_dir(args.assets)
    ict_dir = Path(args.ict) if args.ict else assets / "ict-facekit"
    flame_dir = Path(args.flame_assets) if args.flame_assets else assets / "flame"
    load_ict(ict_dir)  # fail fast, before any work, on a missing or unreadable input
    check_flame_assets_dir(flame_dir)
    t0 = time.time()
    model, report = build_open_model(ict_dir, flame_dir, log=lambda m: print(f"  {m}", flush=True))
    path = model.save(args.out)
    print(json.dumps(asdict(report), indent=2))
    print(f"wrote {path} in {time.time() - t0:.1f} s")
    return 0


def register_embedding(sub) -> None:
    p = sub.add_parser("build-embedding",
                       help="derive the 478-point MediaPipe embedding on a head model's mesh (renders + MediaPipe)")
    p.add_argument("model", nargs="?", help="head model (default: the embedded open model)")
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--out", default=str(SHIPPED_EMBEDDING), help="output .npz (default: %(default)s)")
    p.set_defaults(run=run_embedding)


def run_embedding(args) -> int:
    from ..head_model import load_head_model
    from ..training.mediapipe_embedding import derive_embedding

    model = load_head_model(args.model, assets=args.assets)
    t0 = time.time()
    bar = StageProgress()
    try:
        emb = derive_embedding(model, progress=lambda f: bar("renders", f))
    finally:
        bar.close()
    path = emb.save(args.out)
    mm = emb.spread_m * 1e3
    print(f"wrote {path}: {len(emb.ids)} points from {emb.info['renders']} renders in {time.time() - t0:.1f} s; "
          f"spread median {np.median(mm):.1f} mm, 90% {np.percentile(mm, 90):.1f} mm")
    return 0
