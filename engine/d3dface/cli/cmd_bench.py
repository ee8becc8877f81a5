"""``d3dface bench``: timings and peak memory of every stage, budgets, JSON and a table."""

from __future__ import annotations

import os
import sys

from .common import add_device, add_json, json_to_stdout, write_json

ENV_ADDON_DIR = "D3DFACE_ADDON_DIR"


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure the renderer, fit, Mesh-VAE, DPP step, reconstruct and Blender key writing")
    add_device(p)
    p.add_argument("--repeats", type=int, help="runs per measurement, medians reported (default 5; --quick 2)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch/OpenMP threads per stage (default: 0 = the engine's, $D3DFACE_THREADS or 1)")
    p.add_argument("--quick", action="store_true", help="few repeats, small sizes, reduced iterations (under a minute)")
    p.add_argument("--scaling", action="store_true", help="also time M = 2..32 and image sizes 256..2048")
    p.add_argument("--image", help="bench photo (default: shared/images/occluded/glasses_woman.jpg, resized)")
    p.add_argument("--mask", help="its occlusion mask: a mask image, auto or none "
                                  "(default: the default photo's hand-drawn mask; auto with --image)")
    p.add_argument("--addon-dir", metavar="DIR", default=os.environ.get(ENV_ADDON_DIR) or None,
                   help="folder holding d3dface_addon/ and scripts/bench_blender_keys.py, for the Blender shape-key "
                        f"timing (default: ${ENV_ADDON_DIR}; without it, or without bpy, that timing is skipped)")
    add_json(p, "all measurements", stdout_note="the table then goes to standard error")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..bench.blender_keys import check_addon_dir
    from ..bench.runner import run_bench, table

    if args.addon_dir:
        check_addon_dir(args.addon_dir)  # a wrong folder fails now, not after minutes of timings
    mask = args.mask
    if args.image and mask is None:
        mask = "auto"
    out = run_bench(args.device, args.repeats, args.threads, args.quick, args.scaling, args.image, mask,
                    log=lambda s: print(s, file=sys.stderr, flush=True), addon_dir=args.addon_dir)
    if args.json_path:
        write_json(args.json_path, out, indent=1)
    print(table(out), file=sys.stderr if json_to_stdout(args) else sys.stdout)
    return 0
