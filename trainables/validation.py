"""Per-epoch validation on fixed HR patches (or video windows): SR and bicubic scored by the protocol."""

from __future__ import annotations

import torch
from torch import nn

from trainables.degrade import bicubic_down, bicubic_up, hr_to_model, model_to_01, to_float01, to_uint8
from trainables.grids import make_grid
from trainables.metrics import gridding_score, hf_energy_ratio, hf_error_ratio, psnr, ssim, temporal_consistency
from trainables.video import centre_frame

EVAL_BATCH = 32


class Validator:
    """Holds the validation set (HR uint8 patches, their LR) and the bicubic reference scores.

    Video: `hr_uint8` holds windows (N, T*3, P, P) of T frames; G sees the whole LR
    window, SR and bicubic are scored against the centre frame, and `tc_pairs` (M, 2)
    (consecutive centre frames of one crop) add `tc`, the temporal-consistency error.
    """

    def __init__(self, hr_uint8: torch.Tensor, scale: int, grid_images: int, device: torch.device,
                 tc_pairs: torch.Tensor | None = None, grid_spectra: bool = False):
        self.scale = scale
        self.grid_spectra = grid_spectra  # add the SR/HR log-amplitude spectra rows to the grid
        self.device = device
        self.hr_uint8 = centre_frame(hr_uint8)  # (N, 3, P, P) uint8, on the CPU (the centre frames for video)
        self.tc_pairs = tc_pairs
        hr01 = to_float01(hr_uint8)
        self.lr01 = bicubic_down(hr01, scale)  # (N, T*3, P/s, P/s), uint8 levels in [0, 1]; T = 1 for images
        self.bicubic01 = bicubic_up(centre_frame(self.lr01), scale)  # (N, 3, P, P) in [0, 1]
        self.grid_n = min(grid_images, len(hr_uint8))
        bic = self._scores(self.bicubic01)
        self.reference = {f"bicubic_{k}": v for k, v in bic.items()}

    def _scores(self, sr01: torch.Tensor) -> dict[str, float]:
        sr_uint8 = to_uint8(sr01)
        hr = hr_to_model(to_float01(self.hr_uint8))
        scores = {
            "psnr": psnr(sr_uint8, self.hr_uint8, self.scale).mean().item(),
            "ssim": ssim(sr_uint8, self.hr_uint8, self.scale).mean().item(),
            # nanmean: a flat patch has no high-band energy to restore
            "hf": hf_energy_ratio(sr_uint8, self.hr_uint8, self.scale).nanmean().item(),
            "hf_err": hf_error_ratio(sr_uint8, self.hr_uint8, self.scale).nanmean().item(),
            # periodic energy at multiples of 1/scale cycles/px over HR's, pooled over the patches (1 = HR's level)
            "grid": gridding_score(sr_uint8, self.hr_uint8, self.scale).item(),
            # pixel MSE in the model's [-1, 1] space: the pretraining curve's content loss
            "mse": torch.mean((hr_to_model(sr01) - hr) ** 2).item(),
        }
        if self.tc_pairs is not None:  # video: mean |(SR_t+1 - SR_t) - (HR_t+1 - HR_t)| on Y
            scores["tc"] = temporal_consistency(sr_uint8, self.hr_uint8, self.tc_pairs, self.scale).mean().item()
        return scores

    @torch.no_grad()
    def super_resolve(self, generator: nn.Module, channels_last: bool = False) -> torch.Tensor:
        """SR of every validation LR patch, (N, 3, P, P) in [0, 1] on the CPU."""
        was_training = generator.training
        generator.eval()
        out = []
        for chunk in self.lr01.split(EVAL_BATCH):
            x = chunk.to(self.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model_to_01(generator(x).float()).cpu())
        generator.train(was_training)
        return torch.cat(out)

    def evaluate(self, generator: nn.Module, channels_last: bool = False):
        """Metrics dict (`val_*` for SR, `bicubic_*` for the reference) and the sample grid image."""
        sr01 = self.super_resolve(generator, channels_last)
        metrics = {f"val_{k}": v for k, v in self._scores(sr01).items()}
        metrics.update(self.reference)
        n = self.grid_n
        lr01 = centre_frame(self.lr01[:n])
        grid = make_grid(sr01[:n], self.bicubic01[:n], lr01, to_float01(self.hr_uint8[:n]), self.scale,
                         spectra=self.grid_spectra)
        return metrics, grid
