"""``d3dface render-model``: a picture sheet of a head model (mean, identity modes, expressions)."""

from __future__ import annotations

import numpy as np

from ..errors import InputFileError
from ..head_model import load_head_model
from ..outputs.pictures import grid, label, render_views, write_png
from .common import ASSETS_HELP, MODEL_HELP

DEFAULT_EXPRESSIONS = ("jawOpen", "mouthSmile_L+mouthSmile_R", "eyeBlink_L+eyeBlink_R", "browInnerUp_L+browInnerUp_R",
                       "mouthPucker", "cheekPuff_L+cheekPuff_R")


def register(sub) -> None:
    p = sub.add_parser("render-model", help="render a head model's mean, identity modes and expressions to a PNG")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--modes", type=int, default=3, help="first identity modes to show at -3 and +3 sigma (default: %(default)s)")
    p.add_argument("--expressions", nargs="*", default=list(DEFAULT_EXPRESSIONS), metavar="NAME[+NAME]",
                   help="expressions at weight 1; join several with '+', e.g. mouthSmile_L+mouthSmile_R "
                        f"(default: {' '.join(DEFAULT_EXPRESSIONS)})")
    p.add_argument("--size", type=int, default=224, help="tile size in pixels (default: %(default)s)")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(run=run)


def run(args) -> int:
    model = load_head_model(args.model, assets=args.assets)
    t = model.v_template.astype(np.float64)
    shapes, names = [t], ["mean"]
    for k in range(min(args.modes, model.num_shape)):
        for s in (-3, 3):
            shapes.append(t + s * model.shapedirs[:, :, k])
            names.append(f"identity {k} {s:+d} sd")
    for combo in args.expressions:
        delta = np.zeros_like(t)
        for name in combo.split("+"):
            if name not in model.expr_names:
                raise InputFileError(f"the head model has no expression {name!r}")
            delta += model.exprdirs[:, :, model.expr_names.index(name)]
        shapes.append(t + delta)
        names.append(combo)
    views = render_views(np.stack(shapes), model.faces, ("front", "side"), size=args.size)
    tiles = [label(views[i, 0], names[i]) for i in range(len(shapes))]
    sides = [views[i, 1] for i in range(len(shapes))]
    rows = []
    for start in range(0, len(shapes), 4):  # pairs (front, side), four heads per row
        row = []
        for i in range(start, min(start + 4, len(shapes))):
            row += [tiles[i], sides[i]]
        rows.append(row)
    path = write_png(args.out, grid(rows))
    print(f"wrote {path} ({len(shapes)} heads, front and side)")
    return 0
