"""`runtime.compile`: torch.compile for G and D, in place, so the trainer's steps stay one copy.

The steps in `trainables.train` are written once, eagerly; this module only swaps each
model's forward for a compiled one (`nn.Module.compile`, in place: the module keeps its
type, its state_dict keys and its place under DDP). Autograd then runs the compiled
backward too, so a G step and a D step become a few fused kernels instead of dozens.

Modes are torch.compile's: "default" fuses elementwise work into convolutions' neighbours;
"reduce-overhead" also captures CUDA graphs of each fixed-shape forward and backward (the
launch-bound small trials gain most; it needs a fixed batch shape, which `BatchLoader`
gives by dropping the last incomplete batch); "max-autotune" also searches kernel
configurations (minutes of compile time, for long paper-size runs).

Limits: compiled graphs do not support double backward, so WGAN-GP's gradient penalty
(a gradient of D's gradient) keeps D eager; G is compiled for every loss family.
"""

from __future__ import annotations

from torch import nn

from trainables.config import TrialConfig

# torch.compile's mode argument per runtime.compile value ("default" is torch's None)
MODES = {"default": None, "reduce-overhead": "reduce-overhead", "max-autotune": "max-autotune"}


def compiles_discriminator(cfg: TrialConfig) -> bool:
    """D is compiled unless the loss needs its double backward (WGAN-GP's penalty)."""
    return cfg.runtime.compile != "none" and cfg.loss.family != "wgan_gp"


def compile_models(cfg: TrialConfig, generator: nn.Module, discriminator: nn.Module) -> None:
    """Compile G (and D where it can be) in place per `runtime.compile`; call before wrapping in DDP."""
    if cfg.runtime.compile == "none":
        return
    mode = MODES[cfg.runtime.compile]
    # dynamic=False: every training step has one shape (validation batches recompile once)
    generator.compile(mode=mode, dynamic=False)
    if compiles_discriminator(cfg):
        discriminator.compile(mode=mode, dynamic=False)
