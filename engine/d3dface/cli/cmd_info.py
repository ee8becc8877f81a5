"""``d3dface info [MODEL]``: what a head model holds."""

from __future__ import annotations

from ..head_model import load_head_model
from .common import ASSETS_HELP, add_json, json_to_stdout, write_json


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a head model (default: the embedded open model)")
    p.add_argument("model", nargs="?", help="a .npz head model, a FLAME .pkl, or a FLAME assets folder "
                                            "(default: the embedded open model)")
    p.add_argument("--assets", help="for a FLAME .pkl's UVs, regions and landmarks: " + ASSETS_HELP)
    add_json(p, "the summary", stdout_note="instead of the text summary")
    p.set_defaults(run=run)


def run(args) -> int:
    model = load_head_model(args.model, assets=args.assets)
    s = model.summary()
    if args.json_path:
        write_json(args.json_path, s)
        if json_to_stdout(args):
            return 0
    print(f"model:      {s['name'] or args.model or 'default'}")
    print(f"vertices:   {s['vertices']}")
    print(f"faces:      {s['faces']}")
    print(f"uvs:        {s['uvs']}")
    print(f"shape:      {s['shape_components']} components")
    print(f"expression: {s['expression_components']} components")
    print(f"joints:     {s['joints']} {' '.join(s['joint_names'])}".rstrip())
    print(f"regions:    {len(s['regions'])} ({', '.join(s['regions'])})")
    print(f"landmarks:  {s['landmarks68']} (68-point), {s['landmarks_mediapipe']} (MediaPipe)")
    if s["licence"]:
        print(f"licence:    {s['licence']}")
    return 0
