"""The Mesh-VAE (paper section 4.2, Appendix B): a fully convolutional MeshConv VAE on
the FLAME topology whose latent is 10 points x 64 channels.

Coordinates. The network works on normalised offsets ``x = (v - template) / scale``
(``template`` the head model's mean head, ``scale`` 0.01 m by default, so x is in cm
and of order 1); ``encode`` takes and ``decode`` returns metres.

Visibility. The encoder reads S_m with its occluded vertices zeroed *in normalised
coordinates* (i.e. put at the template, the "no information" value), plus the visibility
as a 4th input channel (1 visible, 0 occluded). Zeroing makes the occluded coordinates
unable to reach the encoder at all (change them: mu is bit-identical); the mask channel
tells "visible and at the template" apart from "hidden", which zeroing alone cannot, and
gives the network the occlusion's shape at every level.

Layers (channel list ``c``, hierarchy levels 0..4 = 5023, 1367, 270, 45, 10 on FLAME):
encoder  same@0 4->c0, down 0->1 c0->c1, down 1->2, down 2->3, down 3->4 c3->c4,
         same@4 c4->c5, then two heads same@4 c5->64 (mu and logvar, no ELU);
decoder  same@4 64->d0, same@4 d0->d1, up 4->3 d1->d2, up 3->2, up 2->1, up 1->0 d4->d5,
         same@0 d5->3 (no ELU).
The paper preset uses the authors' channel plan (encoder 32, 64, 128, 256, 512, 1024,
64; decoder 64, 1024, 512, 256, 128, 64, 32, 3) with 17 basis kernels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .mesh_sampling import MeshHierarchy
from .meshconv import MeshConvBlock

LATENT_CHANNELS = 64


@dataclass
class MeshVAEConfig:
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # c0..c5
    decoder_channels: tuple[int, ...] = (1024, 512, 256, 128, 64, 32)  # d0..d5
    latent_channels: int = LATENT_CHANNELS
    num_basis: int = 17  # M shared basis kernels per vcConv
    residual_rate: float = 0.5  # weight of the shortcut path in every block
    scale: float = 0.01  # metres per normalised unit
    mask_channel: bool = True  # visibility as a 4th encoder input channel

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MeshVAEConfig":
        d = dict(d)
        for k in ("encoder_channels", "decoder_channels"):
            d[k] = tuple(int(c) for c in d[k])
        return cls(**d)


def _index(c) -> torch.Tensor:
    return torch.as_tensor(np.asarray(c.index), dtype=torch.long)


class MeshVAE(nn.Module):
    """encode(vertices (B,V,3) m, visible (B,V) bool) -> mu, logvar (B,L,64); decode(z) -> (B,V,3) m."""

    def __init__(self, template: np.ndarray, hierarchy: MeshHierarchy, config: MeshVAEConfig = MeshVAEConfig()):
        super().__init__()
        self.config = config
        self.hierarchy = hierarchy
        self.register_buffer("template", torch.as_tensor(np.asarray(template), dtype=torch.float32))
        h, c, d, L = hierarchy, config.encoder_channels, config.decoder_channels, len(hierarchy.levels) - 1
        if len(c) != L + 2 or len(d) != L + 2:
            raise ValueError(f"a {L}-step hierarchy needs {L + 2} encoder and decoder channels")
        blk = lambda conn, ci, co, act=True: MeshConvBlock(  # noqa: E731
            _index(conn), conn.num_in, ci, co, config.num_basis, config.residual_rate, act)
        cin = 4 if config.mask_channel else 3
        enc = [blk(h.same[0], cin, c[0])]
        for l in range(L):
            enc.append(blk(h.down[l], c[l], c[l + 1]))
        enc.append(blk(h.same[L], c[L], c[L + 1]))
        self.encoder = nn.Sequential(*enc)
        self.mu_head = blk(h.same[L], c[L + 1], config.latent_channels, act=False)
        self.logvar_head = blk(h.same[L], c[L + 1], config.latent_channels, act=False)
        dec = [blk(h.same[L], config.latent_channels, d[0]), blk(h.same[L], d[0], d[1])]
        for i, l in enumerate(reversed(range(L))):
            dec.append(blk(h.up[l], d[i + 1], d[i + 2]))
        dec.append(blk(h.same[0], d[L + 1], 3, act=False))
        self.decoder = nn.Sequential(*dec)
        for module in (self.encoder, self.mu_head, self.logvar_head):  # encoding runs once per photo:
            for m in module.modules():  # no inference caches (memory)
                if hasattr(m, "cache_inference"):
                    m.cache_inference = False
        with torch.no_grad():  # start near "mean head" and small posterior variance
            self.decoder[-1].conv.basis.mul_(0.1)
            self.logvar_head.conv.basis.mul_(0.1)
            self.logvar_head.conv.bias.fill_(-4.0)

    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    @property
    def latent_shape(self) -> tuple[int, int]:
        return len(self.hierarchy.levels[-1]), self.config.latent_channels

    # ---- coordinates ---------------------------------------------------------------
    def normalise(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) metres -> normalised offsets from the template."""
        return (vertices - self.template) / self.config.scale

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return self.template + x * self.config.scale

    def encoder_input(self, vertices: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
        """(B, V, 3) metres, (B, V) bool -> (B, V, 4): zeroed occluded offsets and the mask."""
        x = self.normalise(vertices)
        if visible is None:
            visible = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        m = visible.to(x.dtype)[..., None]
        x = x * m
        return torch.cat([x, m], -1) if self.config.mask_channel else x

    # ---- the VAE ---------------------------------------------------------------------
    def encode(self, vertices: torch.Tensor, visible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """vertices (B, V, 3) metres, visible (B, V) bool (None: all) -> mu, logvar (B, 10, 64)."""
        f = self.encoder(self.encoder_input(vertices, visible))
        return self.mu_head(f), self.logvar_head(f)

    def decode_normalised(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, 10, 64) -> normalised offsets (B, V, 3)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, 10, 64) -> vertices (B, V, 3) metres."""
        return self.denormalise(self.decoder(z))

    def forward(self, vertices, visible=None, sample: bool = True):
        """-> (reconstruction (B, V, 3) normalised, mu, logvar); z ~ N(mu, sigma) when sample."""
        mu, logvar = self.encode(vertices, visible)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode_normalised(z), mu, logvar
