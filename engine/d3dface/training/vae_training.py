"""Training the Mesh-VAE for shape completion (``d3dface train-vae``).

Each step draws a batch of heads (random head-model samples, or registered meshes),
occludes each with a contiguous mask whose size follows a curriculum (small regions
first, ``mask_start`` -> ``mask_end`` over the first ``curriculum`` share of training;
a share ``p_unmasked`` of the batch stays complete), encodes the masked mesh and decodes
a sample z ~ N(mu, sigma^2). Loss, in normalised units (cm by default), against the
*complete* mesh:

    L1(x_hat, x) + w_laplacian * L1(Lap x_hat, Lap x) + beta(t) * KL(N(mu, sigma) || N(0, I))

with Lap the uniform graph Laplacian (vertex minus its one-ring mean), KL summed over the
640 latent values and averaged over the batch, and beta annealed linearly from 0 to
``kl_weight`` over the first ``kl_anneal`` share of training.

Data are a pure function of (seed, step), so a resumed run sees exactly the batches the
uninterrupted run would have. The run folder holds ``last.pt`` (full training state,
written every ``checkpoint_every`` steps and at each epoch end), ``log.csv`` and
``log.txt`` (one line per epoch) and, at the end, ``model.pt`` (the exported model).
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..errors import ModelFileError
from ..head_model import HeadModel
from ..head_model.mesh_quality import adjacency
from ..complete.mesh_sampling import HierarchySettings, faces_hash, mesh_hierarchy, template_hash
from ..complete.mesh_vae import MeshVAE, MeshVAEConfig
from ..complete.vae_checkpoint import model_payload, read_payload, save_payload, vae_from_payload
from .vae_data import ContiguousMasks, MeshFolder, SyntheticHeads, SyntheticSettings

PRESETS: dict[str, dict] = {
    # CPU-feasible: thin channels, ~0.5-1 s per step of 16 on 2 cores
    "cpu": dict(encoder_channels=(8, 16, 32, 64, 128, 128), decoder_channels=(128, 128, 64, 32, 16, 8),
                batch_size=16, steps_per_epoch=100, epochs=30, lr=2e-3),
    # the paper's channel plan (authors' public config), for CUDA
    "paper": dict(encoder_channels=(32, 64, 128, 256, 512, 1024), decoder_channels=(1024, 512, 256, 128, 64, 32),
                  batch_size=32, steps_per_epoch=500, epochs=100, lr=1e-3),
    # for tests: a handful of small steps
    "tiny": dict(encoder_channels=(4, 8, 8, 16, 16, 16), decoder_channels=(16, 16, 8, 8, 4, 4),
                 batch_size=2, steps_per_epoch=2, epochs=2, lr=2e-3, val_size=4),
}


@dataclass
class TrainSettings:
    preset: str = "cpu"
    encoder_channels: tuple[int, ...] = PRESETS["cpu"]["encoder_channels"]
    decoder_channels: tuple[int, ...] = PRESETS["cpu"]["decoder_channels"]
    batch_size: int = 16
    steps_per_epoch: int = 100
    epochs: int = 30
    lr: float = 2e-3
    lr_final: float = 0.05  # final learning rate as a share of lr (cosine decay)
    w_laplacian: float = 1.0
    kl_weight: float = 1e-5
    kl_anneal: float = 0.3  # share of training over which beta goes 0 -> kl_weight
    mask_start: tuple[float, float] = (0.05, 0.15)  # occluded share range at the start
    mask_end: tuple[float, float] = (0.25, 0.40)  # ... and after the curriculum
    curriculum: float = 0.5  # share of training over which the range grows
    p_unmasked: float = 0.15  # share of each batch left complete
    checkpoint_every: int = 50  # steps
    seed: int = 0
    device: str = "auto"
    data: str = ""  # "" = the head model's random samples; or a folder of registered meshes
    val_size: int = 64  # validation heads (seed + 10_000), evaluated at each epoch end

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TrainSettings":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        d = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=name, **d)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def vae_config(self) -> MeshVAEConfig:
        return MeshVAEConfig(encoder_channels=tuple(self.encoder_channels), decoder_channels=tuple(self.decoder_channels))


def mask_range(s: TrainSettings, step: int) -> tuple[float, float]:
    """The curriculum: occluded share range at a step."""
    t = min(1.0, step / max(1.0, s.curriculum * s.total_steps))
    return tuple(float(a + t * (b - a)) for a, b in zip(s.mask_start, s.mask_end))


def kl_beta(s: TrainSettings, step: int) -> float:
    return s.kl_weight * min(1.0, step / max(1.0, s.kl_anneal * s.total_steps))


def learning_rate(s: TrainSettings, step: int) -> float:
    t = min(1.0, step / max(1, s.total_steps))
    return s.lr * (s.lr_final + (1 - s.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


class Laplacian(torch.nn.Module):
    """Uniform graph Laplacian: x (B, V, C) -> x - mean of the one-ring (B, V, C)."""

    def __init__(self, faces: np.ndarray, num_vertices: int):
        super().__init__()
        A = adjacency(np.asarray(faces), num_vertices).tolil()
        rows = A.rows
        K = max(len(r) for r in rows)
        idx = np.full((num_vertices, K), num_vertices, np.int64)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
        self.register_buffer("index", torch.as_tensor(idx))
        self.register_buffer("inv_deg", 1.0 / torch.as_tensor([max(len(r), 1) for r in rows], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[2])], 1)
        return x - pad[:, self.index].sum(2) * self.inv_deg[:, None]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(0, I)) summed over latent values, mean over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()


@dataclass
class EpochRecord:
    epoch: int
    step: int
    seconds: float  # wall time of training so far
    loss: float
    l1: float
    laplacian: float
    kl: float
    beta: float
    mask_lo: float
    mask_hi: float
    lr: float
    val_full_mm: float  # mean per-vertex L2 of full-mesh reconstruction (z = mu), mm
    val_masked_mm: float  # on the occluded vertices of 30% grown masks, mm
    val_visible_mm: float  # on the visible vertices of the same, mm


class Trainer:
    """Holds model, optimiser, data and the run folder; ``run()`` trains to the end."""

    def __init__(self, model: HeadModel, out_dir: str | Path, settings: TrainSettings, resume: bool = False,
                 log=print, progress: bool = True):
        from ..complete.vae_checkpoint import resolve_device

        self.head_model = model
        self.out_dir = Path(out_dir)
        self.log = log
        self.progress = progress
        self.device = resolve_device(settings.device)
        self.model_hash = template_hash(model.v_template, model.faces)
        self.step, self.epoch, self.elapsed = 0, 0, 0.0
        self.history: list[dict] = []
        state = None
        last = self.out_dir / "last.pt"
        if resume:
            if not last.is_file():
                raise ModelFileError(f"nothing to resume: {last} does not exist")
            state = read_payload(last, "training state")
            if state.get("template_hash") != self.model_hash:  # resuming needs the very same model
                raise ModelFileError(f"{last} was trained for another head model")
            saved = dict(state["settings"])
            for k in ("encoder_channels", "decoder_channels", "mask_start", "mask_end"):
                saved[k] = tuple(saved[k])
            keep = {k: getattr(settings, k) for k in ("epochs", "device", "checkpoint_every")}
            settings = replace(TrainSettings(**saved), **keep)  # the run's settings, more epochs allowed
            self.vae = vae_from_payload(state, str(last), "cpu")
        else:
            hierarchy = mesh_hierarchy(model.v_template, model.faces, HierarchySettings())
            torch.manual_seed(settings.seed)
            self.vae = MeshVAE(model.v_template, hierarchy, settings.vae_config())
        self.settings = settings
        self.vae.to(self.device).train()
        self.opt = torch.optim.Adam(self.vae.parameters(), lr=settings.lr)
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.elapsed = float(state.get("elapsed", 0.0))
            self.history = list(state.get("history", []))
        self.laplacian = Laplacian(model.faces, model.num_vertices).to(self.device)
        if settings.data:
            self.data = MeshFolder(settings.data, model.num_vertices, self.device)
        else:
            self.data = SyntheticHeads(model, SyntheticSettings(), self.device)
        self.masks = ContiguousMasks(model.v_template, model.faces, model.regions)
        vrng = np.random.default_rng([settings.seed, 10_000])
        self.val_vertices = self.data.batch(settings.val_size, vrng)
        self.val_masks = torch.as_tensor(self.masks.sample(settings.val_size, 0.3, vrng, kind="grow"), device=self.device)

    # ---- one step ---------------------------------------------------------------------
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices (B, V, 3) metres and visibility (B, V) bool for a step (pure in seed, step)."""
        s = self.settings
        rng = np.random.default_rng([s.seed, step])
        v = self.data.batch(s.batch_size, rng)
        occ = self.masks.sample(s.batch_size, mask_range(s, step), rng)
        occ[rng.random(s.batch_size) < s.p_unmasked] = False
        return v, torch.as_tensor(~occ, device=self.device)

    def train_step(self) -> dict[str, float]:
        s = self.settings
        v, visible = self.batch(self.step)
        for g in self.opt.param_groups:
            g["lr"] = learning_rate(s, self.step)
        gen = torch.Generator(device=self.device).manual_seed(s.seed * 1_000_003 + self.step)
        mu, logvar = self.vae.encode(v, visible)
        z = mu + torch.randn(mu.shape, generator=gen, device=self.device) * torch.exp(0.5 * logvar)
        x_hat = self.vae.decode_normalised(z)
        x = self.vae.normalise(v)
        l1 = (x_hat - x).abs().mean()
        lap = (self.laplacian(x_hat) - self.laplacian(x)).abs().mean()
        kl = kl_divergence(mu, logvar)
        beta = kl_beta(s, self.step)
        loss = l1 + s.w_laplacian * lap + beta * kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 10.0)
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), "l1": l1.item(), "laplacian": lap.item(), "kl": kl.item(), "beta": beta}

    @torch.no_grad()
    def validate(self) -> tuple[float, float, float]:
        self.vae.eval()
        full, masked, visible = [], [], []
        for i in range(0, len(self.val_vertices), 16):
            v = self.val_vertices[i: i + 16]
            occ = self.val_masks[i: i + 16]
            mu, _ = self.vae.encode(v, None)
            full.append((self.vae.decode(mu) - v).norm(dim=-1).mean(1))
            mu, _ = self.vae.encode(v, ~occ)
            d = (self.vae.decode(mu) - v).norm(dim=-1)
            masked.append((d * occ).sum(1) / occ.sum(1))
            visible.append((d * ~occ).sum(1) / (~occ).sum(1))
        self.vae.train()
        mm = lambda a: float(torch.cat(a).mean()) * 1000.0  # noqa: E731
        return mm(full), mm(masked), mm(visible)

    # ---- files --------------------------------------------------------------------------
    def info(self) -> dict:
        s = self.settings
        return {
            "preset": s.preset, "steps": self.step, "epochs": self.epoch, "batch_size": s.batch_size,
            "train_seconds": round(self.elapsed, 1), "seed": s.seed, "device": str(self.device),
            "data": s.data or f"random samples of {self.head_model.meta.get('name', 'the head model')}",
            "settings": _plain(asdict(s)), "last_epoch": self.history[-1] if self.history else {},
        }

    def save_state(self) -> None:
        p = self._payload(half=False)
        p.update(optimizer=self.opt.state_dict(), step=self.step, epoch=self.epoch, elapsed=self.elapsed,
                 settings=_plain(asdict(self.settings)), history=self.history)
        save_payload(self.out_dir / "last.pt", p)

    def write_logs(self) -> None:
        if not self.history:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.history[0]))
        w.writeheader()
        w.writerows(self.history)
        write_text_atomic(self.out_dir / "log.csv", buf.getvalue())
        lines = [_epoch_line(r) for r in self.history]
        write_text_atomic(self.out_dir / "log.txt", "\n".join(lines) + "\n")

    def export(self, path: str | Path | None = None, half: bool = True) -> Path:
        path = Path(path) if path else self.out_dir / "model.pt"
        return save_payload(path, self._payload(half))

    def _payload(self, half: bool) -> dict:
        return model_payload(self.vae, self.model_hash, self.head_model.meta.get("name", ""), self.info(), half=half,
                             model_faces_hash=faces_hash(self.head_model.faces))

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm import tqdm

        s = self.settings
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=s.total_steps, initial=self.step, disable=not self.progress, desc="train-vae", unit="step")
        sums: dict[str, float] = {}
        n = 0
        while self.step < s.total_steps:
            t0 = time.perf_counter()
            stats = self.train_step()
            self.elapsed += time.perf_counter() - t0
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
            end_of_epoch = self.step % s.steps_per_epoch == 0
            if end_of_epoch:
                self.epoch = self.step // s.steps_per_epoch
                full, masked, visible = self.validate()
                lo, hi = mask_range(s, self.step)
                rec = EpochRecord(self.epoch, self.step, round(self.elapsed, 1), *(sums[k] / n for k in ("loss", "l1", "laplacian", "kl")),
                                  kl_beta(s, self.step), lo, hi, learning_rate(s, self.step), full, masked, visible)
                self.history.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(rec).items()})
                sums, n = {}, 0
                self.log(_epoch_line(self.history[-1]))
                self.write_logs()
            if end_of_epoch or self.step % s.checkpoint_every == 0:
                self.save_state()
        bar.close()
        self.save_state()
        return self.export()


def _epoch_line(r: dict) -> str:
    return (f"epoch {r['epoch']:3d} step {r['step']:6d} {r['seconds']:8.1f}s loss {r['loss']:.4f} "
            f"l1 {r['l1']:.4f} lap {r['laplacian']:.4f} kl {r['kl']:.1f} beta {r['beta']:.1e} "
            f"mask {r['mask_lo']:.2f}-{r['mask_hi']:.2f} | val full {r['val_full_mm']:.3f} mm, "
            f"30% mask: occluded {r['val_masked_mm']:.3f} visible {r['val_visible_mm']:.3f} mm")


def _plain(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
