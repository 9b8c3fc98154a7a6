"""One run's state and its steps: models, optimisers, the MSE pretraining step and the GAN step, one epoch.

`trainables.train.train` drives it epoch by epoch; rank and world size come from
torch.distributed (`DistInfo`).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from trainables import checkpoint
from trainables.compiling import compile_models
from trainables.config import TrialConfig
from trainables.data import TrainPatches
from trainables.degrade import bicubic_down, hr_to_model, to_float01
from trainables.distributed import DistInfo, any_true, sum_across
from trainables.ema import GeneratorEMA
from trainables.fourier import content_loss as fourier_content_loss
from trainables.losses import ADVERSARIAL, gradient_penalty, load_vgg54, pixel_loss
from trainables.models import build_discriminator, build_generator
from trainables.schedules import epoch_rates, set_rates
from trainables.video import centre_frame

# The train metrics each epoch reports (means over its steps; summed on the device, one sync per epoch).
LOSS_KEYS = ("loss_pixel", "loss_vgg", "loss_adv", "loss_g", "loss_d", "loss_gp", "d_real", "d_fake", "loss_fourier")
OPTIMIZERS = ("opt_pre", "opt_g", "opt_d")  # the Trainer attributes, and their checkpoint keys
DIVERGENCE_CHECK_EVERY = 20  # steps between finiteness checks (each costs a device sync)


def all_finite(sums: dict[str, torch.Tensor]) -> bool:
    return bool(torch.isfinite(torch.stack(list(sums.values()))).all())


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DDP) else model


@contextlib.contextmanager
def frozen(model: nn.Module):
    """D's weights take no gradient during G's step; under DDP its grads are not synced either."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    sync = model.no_sync() if isinstance(model, DDP) else contextlib.nullcontext()
    try:
        with sync:
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class Trainer:
    """The state of one run: models, optimisers, data, counters."""

    def __init__(self, cfg: TrialConfig, info: DistInfo, device: torch.device):
        self.cfg, self.info, self.device = cfg, info, device
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.generator: nn.Module = build_generator(cfg).to(device)
        self.discriminator: nn.Module = build_discriminator(cfg).to(device)
        self.memory_format = torch.channels_last if cfg.runtime.channels_last else torch.contiguous_format
        for m in (self.generator, self.discriminator):
            m.to(memory_format=self.memory_format)
        o = cfg.optim
        self.opt_pre = torch.optim.Adam(self.generator.parameters(), lr=o.lr_pretrain, betas=(o.beta1_pretrain, o.beta2_pretrain))
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.lr_g, betas=(o.beta1_g, o.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=o.lr_d, betas=(o.beta1_d, o.beta2))
        self.ema = GeneratorEMA(self.generator, o.ema_decay) if o.ema_decay > 0 else None
        # runtime.compile: forwards swapped in place, after the EMA's (eager) copy, before DDP wraps them
        compile_models(cfg, self.generator, self.discriminator)
        if info.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.generator = DDP(self.generator, device_ids=ids)
            self.discriminator = DDP(self.discriminator, device_ids=ids)
        self.adversarial = ADVERSARIAL[cfg.loss.family]
        self.vgg = load_vgg54().to(device) if cfg.loss.vgg_weight > 0 else None
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.runtime.precision == "bf16")
        # frequency-space content loss (trainables.fourier; 0 when off)
        self.fourier = fourier_content_loss(cfg.loss.fourier_weight, cfg.loss.fourier_terms)
        self.epoch = 0  # epochs completed
        self.g_steps = 0
        self.d_steps = 0
        self.best_psnr = -math.inf
        self.best_epoch = 0
        self.best_generator: dict[str, torch.Tensor] | None = None  # CPU copy of the best epoch's weights (rank 0)
        self.gan_start_psnr: float | None = None  # val_psnr the GAN phase started from
        self.gan_curve: list[float] = []  # val_psnr of the GAN epochs so far

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        ema = {} if self.ema is None else {  # `generator` is the model the run delivers: the average
            "generator_live": unwrap(self.generator).state_dict(), "ema_updates": self.ema.updates}
        return {
            "generator": self.eval_generator().state_dict(),
            **ema,
            "discriminator": unwrap(self.discriminator).state_dict(),
            **{key: getattr(self, key).state_dict() for key in OPTIMIZERS},
            "epoch": self.epoch,
            "phase": self.phase(self.epoch - 1) if self.epoch else "pretrain",
            "g_steps": self.g_steps,
            "d_steps": self.d_steps,
            "best_psnr": self.best_psnr,
            "best_epoch": self.best_epoch,
            "best_generator": self.best_generator,
            "gan_start_psnr": self.gan_start_psnr,
            "gan_curve": list(self.gan_curve),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        unwrap(self.generator).load_state_dict(state.get("generator_live", state["generator"]))
        if self.ema is not None:
            self.ema.load_state_dict(state["generator"], state.get("ema_updates", 0))
        unwrap(self.discriminator).load_state_dict(state["discriminator"])
        for key in OPTIMIZERS:
            getattr(self, key).load_state_dict(state[key])
        for key in ("epoch", "g_steps", "d_steps", "best_psnr", "best_epoch"):
            setattr(self, key, state[key])
        self.best_generator = state.get("best_generator")
        self.gan_start_psnr = state.get("gan_start_psnr")
        self.gan_curve = list(state.get("gan_curve", []))
        checkpoint.set_rng_state(state["rng"])

    def keep_best(self) -> None:
        """Copy the delivered generator's weights as the selected model (test scores are taken on it)."""
        self.best_generator = {k: v.detach().to("cpu", copy=True) for k, v in self.eval_generator().state_dict().items()}

    def eval_generator(self) -> nn.Module:
        """The generator that validation, grids, test scores and checkpoints use: the EMA when on."""
        return self.ema.model if self.ema is not None else unwrap(self.generator)

    def start_epoch(self) -> dict[str, float]:
        """Set the schedule's rates for the coming epoch (trainables.schedules); returns them as metrics."""
        rates = epoch_rates(self.cfg, self.epoch)
        set_rates(rates, {"lr_pretrain_now": self.opt_pre, "lr_g_now": self.opt_g, "lr_d_now": self.opt_d})
        return rates

    def phase(self, epoch: int) -> str:
        return "pretrain" if epoch < self.cfg.schedule.pretrain_epochs else "gan"

    # ------------------------------------------------------------------ steps

    def pretrain_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """One G update on the pixel loss (plus the Fourier term when on); returns the losses, detached."""
        with self.autocast:
            sr = self.generator(lr)  # (B, 3, H, W) in [-1, 1]
            loss_pixel = pixel_loss(sr.float(), hr, self.cfg.loss)
            loss_fourier = self.fourier(sr.float(), hr)
        loss_g = loss_pixel + self.cfg.loss.fourier_weight * loss_fourier
        self._update_g(self.opt_pre, loss_g)
        return {"loss_pixel": loss_pixel.detach(), "loss_g": loss_g.detach(), "loss_fourier": loss_fourier.detach()}

    def gan_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """(1) d_steps_per_g D updates, then (2) one G update through the frozen D; returns the losses, detached
        (D's are its last step's)."""
        cfg, adv, D = self.cfg, self.adversarial, self.discriminator
        with self.autocast:
            sr = self.generator(lr)  # (B, 3, H, W) in [-1, 1]; one G forward serves both updates
        fake = sr.detach()

        # (1) update D: d_steps_per_g steps on this batch with G held fixed
        for _ in range(cfg.schedule.d_steps_per_g):
            with self.autocast:
                real_score, fake_score = D(hr).float(), D(fake).float()  # (B,) raw scores
                loss_d = adv.d_loss(real_score, fake_score)
            gp = torch.zeros((), device=self.device)
            if cfg.loss.family == "wgan_gp":
                gp = gradient_penalty(D, hr, fake)
                loss_d = loss_d + cfg.loss.gp_weight * gp
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self._clip(D)
            self.opt_d.step()
            self.d_steps += 1

        # (2) update G: content + beta * adversarial, D frozen
        with self.autocast:
            with frozen(D):
                loss_adv = adv.g_loss(D(sr).float())
            loss_pixel = pixel_loss(sr.float(), hr, cfg.loss)
            loss_vgg = self.vgg(sr, hr).float() if self.vgg is not None else torch.zeros((), device=self.device)
            loss_fourier = self.fourier(sr.float(), hr)
        loss_g = cfg.loss.pixel_weight * loss_pixel + cfg.loss.vgg_weight * loss_vgg + cfg.loss.beta * loss_adv
        loss_g = loss_g + cfg.loss.fourier_weight * loss_fourier
        self._update_g(self.opt_g, loss_g)
        losses = {"loss_pixel": loss_pixel, "loss_vgg": loss_vgg, "loss_adv": loss_adv, "loss_g": loss_g,
                  "loss_d": loss_d, "loss_gp": gp, "loss_fourier": loss_fourier}
        return {**{k: v.detach() for k, v in losses.items()},
                "d_real": adv.score(real_score.detach()).mean(), "d_fake": adv.score(fake_score.detach()).mean()}

    def _update_g(self, opt: torch.optim.Optimizer, loss_g: torch.Tensor) -> None:
        """One G step on `loss_g` with `opt` (pretraining's or the GAN phase's), then the EMA."""
        opt.zero_grad(set_to_none=True)
        loss_g.backward()
        self._clip(self.generator)
        opt.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.generator))
        self.g_steps += 1

    def _clip(self, model: nn.Module) -> None:
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.optim.grad_clip)

    # ------------------------------------------------------------------ epoch

    def run_epoch(self, loader, dataset: TrainPatches, progress: Callable[[str], None] | None) -> tuple[dict, bool]:
        """One pass over the epoch's patches; returns (mean train metrics, diverged)."""
        epoch, phase, scale = self.epoch, self.phase(self.epoch), self.cfg.scale
        dataset.set_epoch(epoch)
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        # per-epoch reseed: noise (WGAN-GP interpolation weights) is a function of
        # (seed, epoch, rank), so a resumed run continues exactly, on every rank
        torch.manual_seed(self.cfg.seed * 100_003 + epoch * 1_009 + self.info.rank)
        sums = {k: torch.zeros((), device=self.device) for k in LOSS_KEYS}  # per-step losses, summed
        steps, images, diverged = 0, 0, False
        step_fn = self.pretrain_step if phase == "pretrain" else self.gan_step
        start = last_note = time.perf_counter()
        self.generator.train()
        self.discriminator.train()
        for batch in loader:  # (B, T*3, P, P) uint8 HR: T = data.frames frames t-k..t+k (images: T = 1)
            hr01 = to_float01(batch.to(self.device, non_blocking=True))
            lr = bicubic_down(hr01, scale).contiguous(memory_format=self.memory_format)  # (B, T*3, P/s, P/s) in [0, 1]
            # the target (and D's real input) is the centre frame t
            hr = hr_to_model(centre_frame(hr01)).contiguous(memory_format=self.memory_format)  # (B, 3, P, P) in [-1, 1]
            for key, value in step_fn(lr, hr).items():  # detached: the sums build no graph
                sums[key] += value
                if self.cfg.runtime.debug_nan_step is not None and self.g_steps >= self.cfg.runtime.debug_nan_step:
                    for total in sums.values():  # the injected fault: as if the losses had blown up
                        total += float("nan")
            steps += 1
            images += batch.shape[0]
            if steps % DIVERGENCE_CHECK_EVERY == 0:
                diverged = any_true(not all_finite(sums), self.info, self.device)
                if diverged:
                    break
            if progress is not None and time.perf_counter() - last_note > 10:
                last_note = time.perf_counter()
                progress(f"  epoch {epoch + 1} ({phase}): {images * self.info.world_size} / "
                         f"{self.cfg.schedule.patches_per_epoch} patches")
        if not diverged:
            diverged = any_true(not all_finite(sums), self.info, self.device)
        elapsed = time.perf_counter() - start
        totals = sum_across(torch.stack([*(sums[k] for k in LOSS_KEYS), torch.tensor(float(steps), device=self.device)]),
                            self.info)
        n = max(float(totals[-1].item()), 1.0)
        train = {k: float(v) / n for k, v in zip(LOSS_KEYS, totals[:-1].tolist())}
        train["images_per_s"] = images * self.info.world_size / max(elapsed, 1e-9)
        train["train_time_s"] = elapsed
        return train, diverged
