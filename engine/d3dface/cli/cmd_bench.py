"""``d3dface bench``: timings and peak memory of every stage, budgets, JSON and a table."""

from __future__ import annotations

import json
import sys

from ..atomic import write_atomic


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure the renderer, fit, Mesh-VAE, DPP step, reconstruct and Blender key writing")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--repeats", type=int, help="runs per measurement, medians reported (default 5; --quick 2)")
    p.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads per stage (default: the engine's, $D3DFACE_THREADS or 1)")
    p.add_argument("--quick", action="store_true", help="few repeats, small sizes, reduced iterations (under a minute)")
    p.add_argument("--scaling", action="store_true", help="also time M = 2..32 and image sizes 256..2048")
    p.add_argument("--image", help="bench photo (default: shared/images/occluded/glasses_woman.jpg, resized)")
    p.add_argument("--mask", help="its occlusion mask (default: the photo's hand-drawn mask; or auto)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write all measurements to FILE")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..bench.runner import run_bench, table

    mask = args.mask
    if args.image and mask is None:
        mask = "auto"
    out = run_bench(args.device, args.repeats, args.threads, args.quick, args.scaling, args.image, mask,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json_path:
        write_atomic(args.json_path, lambda p: p.write_text(json.dumps(out, indent=1)))
    print(table(out))
    return 0
