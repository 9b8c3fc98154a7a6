"""Learning-rate schedules: the rate in force in each epoch of a phase, as a formula of the epoch.

Each phase runs `optim.schedule` over its own epochs: pretraining scales `lr_pretrain`
over `schedule.pretrain_epochs`, the GAN phase scales `lr_g` and `lr_d` alike over
`schedule.gan_epochs`. With e the epoch within the phase (0-based), T the phase's
epochs and W = `optim.warmup_epochs`:

    warm-up (every schedule)  e < W:  factor = (e + 1) / (W + 1)
    constant                          factor = 1
    step                              factor = gamma ** floor(e / step_epochs)
    cosine                            factor = m + (1 - m) * (1 + cos(pi * (e - W) / (T - W))) / 2,
                                      m = min_lr_ratio

The factor depends on (e, T) alone: no scheduler object carries state, so a resumed run
sets the same rates as an uninterrupted one. Epoch 0's factor does not depend on T, which
lets `trainables.quality` time one epoch before it fixes the phase's length.
"""

from __future__ import annotations

import math

import torch

from trainables.config import OptimConfig, TrialConfig


def lr_factor(cfg: OptimConfig, epoch: int, epochs: int) -> float:
    """The multiplier of the base rate in epoch `epoch` (0-based) of a phase of `epochs` epochs."""
    w = cfg.warmup_epochs
    if epoch < w:
        return (epoch + 1) / (w + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (epoch // cfg.step_epochs)
    if cfg.schedule == "cosine":
        # progress through the post-warm-up epochs, in [0, 1); the last epoch stays above the floor
        progress = (epoch - w) / max(epochs - w, 1)
        m = cfg.min_lr_ratio
        return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"optim.schedule: unknown {cfg.schedule!r}")


def epoch_rates(cfg: TrialConfig, epoch: int) -> dict[str, float]:
    """The rates in force in global epoch `epoch` (0-based), keyed by their metric names.

    Pretraining epochs give `lr_pretrain_now`; GAN epochs give `lr_g_now` and `lr_d_now`.
    """
    o, s = cfg.optim, cfg.schedule
    if epoch < s.pretrain_epochs:
        return {"lr_pretrain_now": o.lr_pretrain * lr_factor(o, epoch, s.pretrain_epochs)}
    factor = lr_factor(o, epoch - s.pretrain_epochs, s.gan_epochs)
    return {"lr_g_now": o.lr_g * factor, "lr_d_now": o.lr_d * factor}


def set_rates(rates: dict[str, float], optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Write each rate into every param group of the optimizer under the same key.

    Called at the start of every epoch, after a resume too: it overrides the rate that
    `Optimizer.load_state_dict` restored from the checkpoint.
    """
    for key, rate in rates.items():
        for group in optimizers[key].param_groups:
            group["lr"] = rate
