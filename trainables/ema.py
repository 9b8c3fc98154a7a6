"""An exponential moving average of the generator's weights (`optim.ema_decay`), as ESRGAN-era trainers keep.

After every G step (pretraining and GAN phase alike), with n the number of updates so far
(1 for the first):

    d_n = min(ema_decay, (1 + n) / (10 + n))
    ema <- d_n * ema + (1 - d_n) * live          for every parameter
    ema buffers <- live buffers                  (BatchNorm running statistics are copied, not averaged)

The ramp (1 + n) / (10 + n) (TensorFlow's `num_updates` rule) keeps the random initial
weights from lingering in the average of a short CPU run: with decay 0.999 and no ramp,
0.999^1600 = 20% of the average would still be the initialisation after 1,600 steps.
The average lives in a copy of the generator, so validation can call it like the model.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class GeneratorEMA:
    """The averaged copy of a generator (`model`), updated from the live one by `update`."""

    def __init__(self, generator: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay: got {decay}, expected in (0, 1)")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(generator).requires_grad_(False)
        self.model.eval()

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """Fold the live generator's weights into the average (call after each optimiser step)."""
        weight = 1.0 - self.current_decay()
        self.updates += 1
        for avg, live in zip(self.model.parameters(), generator.parameters()):
            avg.lerp_(live.detach(), weight)  # avg + weight * (live - avg)
        for avg, live in zip(self.model.buffers(), generator.buffers()):
            avg.copy_(live)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights: a plain state dict of tensors (loadable with weights_only=True)."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
