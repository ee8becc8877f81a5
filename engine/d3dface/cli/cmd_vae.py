"""``d3dface train-vae`` and ``d3dface evaluate-vae``: train the Mesh-VAE for shape
completion, and measure a checkpoint (reconstruction, completion vs a PCA baseline,
sample validity, speed)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..errors import InputFileError
from ..head_model import load_head_model
from .common import MODEL_HELP, add_device, add_json, json_to_stdout, write_json


def register(sub) -> None:
    p = sub.add_parser("train-vae", help="train the Mesh-VAE (shape completion) on head-model samples or meshes")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: last.pt, log.csv, log.txt, model.pt")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--data", help="folder of registered FLAME-topology meshes (.ply/.obj) instead of model samples")
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper", "tiny"],
                   help="cpu: thin channels for a CPU; paper: the paper's channels, for CUDA; tiny: tests "
                        "(default: %(default)s)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the preset's)")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    p.add_argument("--kl-weight", type=float, help="final KL weight (default: 1e-5)")
    p.add_argument("--checkpoint-every", type=int, default=50,
                   help="steps between training-state saves (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    add_device(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--export", help="also copy the final model to this path (e.g. the engine's data folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)

    q = sub.add_parser("evaluate-vae", help="measure a Mesh-VAE on held-out head-model samples (mm)")
    q.add_argument("checkpoint", nargs="?", help="Mesh-VAE model file (default: the shipped one)")
    q.add_argument("--model", help=MODEL_HELP)
    q.add_argument("--n", type=int, default=500, help="held-out samples (default: %(default)s)")
    q.add_argument("--seed", type=int, default=12345, help="held-out seed, never used in training (default: %(default)s)")
    q.add_argument("--fractions", default="0.25,0.4,0.6",
                   help="comma-separated occluded shares of the completion test (default: %(default)s)")
    add_device(q)
    add_json(q, "the results", stdout_note="the text report then goes to standard error")
    q.set_defaults(run=run_evaluate)


def run_train(args) -> int:
    from ..training.vae_training import Trainer, TrainSettings

    model = load_head_model(args.model)
    if args.data and not Path(args.data).is_dir():
        raise InputFileError(f"mesh folder not found: {args.data}")
    settings = TrainSettings.from_preset(
        args.preset, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        lr=args.lr, kl_weight=args.kl_weight, checkpoint_every=args.checkpoint_every, seed=args.seed,
        device=args.device, data=args.data or "")
    trainer = Trainer(model, args.out, settings, resume=args.resume, progress=not args.quiet)
    path = trainer.run()
    print(f"model: {path}")
    if args.export:
        from ..atomic import write_atomic

        write_atomic(args.export, lambda p: shutil.copyfile(path, p))
        print(f"exported: {args.export}")
    return 0


def run_evaluate(args) -> int:
    from ..complete.vae_checkpoint import default_vae_path
    from ..evaluation.vae_eval import evaluate_vae, format_report

    model = load_head_model(args.model)
    fractions = tuple(float(f) for f in args.fractions.split(",") if f.strip())
    result = evaluate_vae(model, args.checkpoint or default_vae_path(), n=args.n, seed=args.seed,
                          fractions=fractions, device=args.device)
    print(format_report(result), file=sys.stderr if json_to_stdout(args) else sys.stdout)
    if args.json_path:
        write_json(args.json_path, result)
    return 0
