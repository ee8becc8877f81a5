"""Random heads of a head model: identity coefficients ~ N(0, 1) and sparse expressions (each
blendshape active with a probability, its weight ~ U[0, 1]). One home for the generator that
the local models (numpy) and the encoder's latent statistics (torch) draw from; the synthetic
benchmark faces and the Mesh-VAE's training data draw other distributions on purpose (one
head at a time with a pose, and 1 to 4 combined expressions: see their modules)."""

from __future__ import annotations

import numpy as np

EXPRESSION_PROBABILITY = 0.15  # each blendshape active with this probability in a random head


def random_coefficients(model, n: int, rng: np.random.Generator,
                        expression_probability: float = EXPRESSION_PROBABILITY) -> tuple[np.ndarray, np.ndarray]:
    """Identity (n, S) ~ N(0, 1) and expression weights (n, E) in [0, 1], from a numpy generator."""
    beta = rng.standard_normal((n, model.num_shape))
    psi = rng.uniform(0, 1, (n, model.num_expr)) * (rng.uniform(0, 1, (n, model.num_expr)) < expression_probability)
    return beta, psi


def random_coefficients_torch(model, n: int, generator, expression_probability: float = EXPRESSION_PROBABILITY):
    """The same distribution from a torch generator: (n, S) and (n, E) float32 CPU tensors."""
    import torch

    shape = torch.randn(n, model.num_shape, generator=generator)
    expr = torch.rand(n, model.num_expr, generator=generator) * (
        torch.rand(n, model.num_expr, generator=generator) < expression_probability)
    return shape, expr
