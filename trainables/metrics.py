"""The SR benchmark protocol's metrics (Y-channel PSNR and SSIM) and a spectral high-frequency measure."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

# Protocol (shared/data/sr-benchmarks/README.md): uint8 inputs, Y of BT.601 YCbCr
# (16-235), `scale` px cropped from every border, float64, PSNR peak 255, SSIM with an
# 11x11 Gaussian window (sigma 1.5) over the valid region. RGB PSNR runs ~1.8 dB lower
# than Y PSNR; never mix the two.

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
# PSNR of an exact reproduction is infinite; one such image (a flat validation patch
# reproduced exactly) would make the mean infinite. Per-image PSNR is capped here, the
# value identical images score (README, vocabulary: PSNR).
PSNR_CAP_DB = 100.0


def rgb_to_y(x: Tensor) -> Tensor:
    """BT.601 luma, 16-235: (B, 3, H, W) RGB in [0, 255] -> (B, 1, H, W) Y in [0, 255].

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for RGB in 0..255 (the README's
    formula with RGB in [0, 1]). Not rounded, as in BasicSR. A (B, 1, H, W) input is
    already single-channel and is returned unchanged: gray images are scored on their
    own channel.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]  # (B, 1, H, W) each
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _y64(img_uint8: Tensor, scale: int) -> Tensor:
    """(B, C, H, W) uint8 -> (B, 1, H - 2*scale, W - 2*scale) float64 Y, border cropped."""
    if img_uint8.dtype != torch.uint8:
        raise TypeError(f"metrics expect uint8 images (round SR first), got {img_uint8.dtype}")
    y = rgb_to_y(img_uint8.to(torch.float64))
    h, w = y.shape[-2:]
    if h <= 2 * scale or w <= 2 * scale:
        raise ValueError(f"image {h}x{w} has nothing left after cropping {scale} px from each border")
    return y[..., scale : h - scale, scale : w - scale]


def _pair(sr: Tensor, hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    if sr.shape != hr.shape:
        raise ValueError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
    return _y64(sr, scale), _y64(hr, scale)


def _psnr_y(y_sr: Tensor, y_hr: Tensor) -> Tensor:
    mse = (y_sr - y_hr).pow(2).mean(dim=(1, 2, 3))  # (B,)
    floor = 255.0**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)  # the MSE at which PSNR reaches the cap
    return 10.0 * torch.log10(255.0**2 / mse.clamp_min(floor))


def psnr(sr_uint8: Tensor, hr_uint8: Tensor, scale: int) -> Tensor:
    """Y-channel PSNR in dB, peak 255: (B, C, H, W) uint8 pair -> (B,) float64, at most PSNR_CAP_DB
    (100 dB: identical images score exactly that, never inf)."""
    return _psnr_y(*_pair(sr_uint8, hr_uint8, scale))


def _gaussian_1d(device: torch.device) -> Tensor:
    """(11,) float64 Gaussian taps, sigma 1.5, summing to 1; the 2-D window is its outer product."""
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _ssim_y(x: Tensor, y: Tensor) -> Tensor:
    """(B, 1, h, w) float64 Y pair -> (B,) mean of the valid-region SSIM map."""
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} px after the border crop, got {tuple(x.shape[-2:])}")
    g = _gaussian_1d(x.device)

    def blur(t: Tensor) -> Tensor:
        # separable 11x11 Gaussian (rows, then columns): ~10x faster than a 2-D float64 conv
        t = F.conv2d(t, g.view(1, 1, 1, SSIM_WINDOW))  # (B, 1, h, w-10)
        return F.conv2d(t, g.view(1, 1, SSIM_WINDOW, 1))  # (B, 1, h-10, w-10): valid region only

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov_xy + SSIM_C2)
                / ((mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return ssim_map.mean(dim=(1, 2, 3))


def ssim(sr_uint8: Tensor, hr_uint8: Tensor, scale: int) -> Tensor:
    """Y-channel SSIM (Wang et al. 2004): (B, C, H, W) uint8 pair -> (B,) float64.

    Local statistics come from an 11x11 Gaussian window (sigma 1.5) applied without
    padding, so the SSIM map covers only the valid region (H - 2*scale - 10 rows);
    the score is the map's mean. Same as scikit-image's structural_similarity with
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    (which filters with padding, then drops the 5 px the padding touched).
    """
    return _ssim_y(*_pair(sr_uint8, hr_uint8, scale))


def _windowed_power(y: Tensor) -> Tensor:
    """(N, 1, h, w) float64 -> (N, 1, h, w) power spectrum, mean removed (so the window does not spread DC)
    and Hann-windowed (tapers the borders so the FFT's periodic wrap adds no false edges)."""
    h, w = y.shape[-2:]
    y = y - y.mean(dim=(-2, -1), keepdim=True)
    hann = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64, device=y.device),
                       torch.hann_window(w, periodic=False, dtype=torch.float64, device=y.device))
    return torch.fft.fft2(y * hann).abs().pow(2)


def _high_band_energy(y: Tensor, scale: int) -> Tensor:
    """(N, 1, h, w) float64 -> (N,) spectral energy with max(|fx|, |fy|) > 0.5/scale cycles/px."""
    h, w = y.shape[-2:]
    power = _windowed_power(y)  # (N, 1, h, w)
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=y.device).abs().view(h, 1)
    fx = torch.fft.fftfreq(w, dtype=torch.float64, device=y.device).abs().view(1, w)
    high = torch.maximum(fy, fx) > 0.5 / scale  # (h, w): outside the LR's Nyquist square
    return power[..., high].sum(dim=(1, 2))


def _hf_ratios_y(y_sr: Tensor, y_hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(B, 1, h, w) float64 Y pair -> (energy ratio, error ratio), each (B,); one batched FFT."""
    e_sr, e_hr, e_err = _high_band_energy(torch.cat([y_sr, y_hr, y_sr - y_hr]), scale).chunk(3)
    # identical images score 1 and 0 even where HR has no high band (a flat patch: 0 / 0);
    # an SR that differs from a flat HR stays NaN (no HR energy to compare with)
    same = (e_hr == 0) & (e_err == 0)
    return torch.where(same, 1.0, e_sr / e_hr), torch.where(same, 0.0, e_err / e_hr)


def hf_energy_ratio(sr: Tensor, hr: Tensor, scale: int) -> Tensor:
    """E_high(SR) / E_high(HR): how much of HR's above-LR-Nyquist energy the SR has; (B,) float64.

    Inputs are (B, C, H, W) uint8. On the border-cropped Y channel (float64), mean
    removed, 2-D Hann window, FFT; the high band is max(|fx|, |fy|) > 0.5/scale
    cycles/px, the frequencies an LR image at 1/scale resolution cannot represent.
    Bicubic scores well below 1 (it cannot restore those frequencies: 0.03-0.08 on
    Set5/Set14 at x2-x4); a perfect SR scores exactly 1; a GAN that hallucinates
    texture may exceed 1, and so do nearest-neighbour's blocky edges (1.1-1.9 at x2),
    so a score near 1 alone does not mean the detail is right: `hf_error_ratio` says
    whether it is in the right place. NaN if HR has no high-band energy (a flat image) and SR
    differs from it; identical images score 1.
    """
    return _hf_ratios_y(*_pair(sr, hr, scale), scale)[0]


def hf_error_ratio(sr: Tensor, hr: Tensor, scale: int) -> Tensor:
    """E_high(SR - HR) / E_high(HR): the high band's error relative to HR's; (B,) float64.

    0 for a perfect SR; just under 1 for bicubic, which leaves the band nearly empty;
    above 1 when the SR's high band is wrong rather than missing (nearest: ~1.9-2.7 at x2).
    """
    return _hf_ratios_y(*_pair(sr, hr, scale), scale)[1]


METRIC_NAMES = ("psnr", "ssim", "hf_energy_ratio", "hf_error_ratio")


def score_pair(sr_uint8: Tensor, hr_uint8: Tensor, scale: int) -> dict[str, float]:
    """Every metric in METRIC_NAMES for one image: (C, H, W) or (1, C, H, W) uint8 pair -> {name: value}."""
    if sr_uint8.ndim == 3:
        sr_uint8, hr_uint8 = sr_uint8.unsqueeze(0), hr_uint8.unsqueeze(0)
    if sr_uint8.shape[0] != 1:
        raise ValueError(f"score_pair takes one image, got a batch of {sr_uint8.shape[0]}")
    y_sr, y_hr = _pair(sr_uint8, hr_uint8, scale)  # Y once, shared by every metric
    energy, error = _hf_ratios_y(y_sr, y_hr, scale)
    values = (_psnr_y(y_sr, y_hr), _ssim_y(y_sr, y_hr), energy, error)
    return {name: v.item() for name, v in zip(METRIC_NAMES, values)}


def temporal_consistency(sr_uint8: Tensor, hr_uint8: Tensor, pairs: Tensor, scale: int) -> Tensor:
    """Temporal-consistency error of video SR: (M,) float64, in Y levels (0-255); lower is better.

    `sr_uint8`, `hr_uint8`: (N, C, H, W) uint8 centre frames; `pairs`: (M, 2) long indices
    (a, b) of frames t and t+1 of one clip at the same crop. Per pair, on the protocol's
    border-cropped BT.601 Y (float64):

        tc = mean |(SR_b - SR_a) - (HR_b - HR_a)|

    how far SR's frame-to-frame change departs from HR's. 0 when SR changes exactly as
    HR does (HR itself, or an SR whose error is the same in both frames); flicker and
    shimmer that single-frame SR adds between frames raise it. Equal to
    mean |err_b - err_a| with err = SR - HR, so a steady error does not count, only how
    the error changes from one frame to the next.
    """
    y_sr, y_hr = _pair(sr_uint8, hr_uint8, scale)  # (N, 1, h, w) each
    a, b = pairs[:, 0], pairs[:, 1]
    change = (y_sr[b] - y_sr[a]) - (y_hr[b] - y_hr[a])  # (M, 1, h, w)
    return change.abs().mean(dim=(1, 2, 3))


# ----------------------------------------------------------------------------- gridding

GRID_PEAK_BINS = 1  # bins (Chebyshev) around each LR-grid frequency that count as its peak: Hann spreads a line over +-1
GRID_RING_BINS = 4  # the background ring runs from GRID_PEAK_BINS + 1 to this many bins around each peak


def _grid_masks(h: int, w: int, scale: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(h, w) bool masks of an fft2 layout: bins near the LR grid's periodic frequencies, and their ring.

    The grid frequencies are (ky / scale, kx / scale) cycles/px for ky, kx in 0..scale-1, all
    but DC (0, 0): an upsampler whose output repeats a pattern every `scale` pixels (pixel
    shuffle's checkerboard) puts its energy exactly there.
    """
    iy = torch.arange(h, device=device).view(h, 1)
    ix = torch.arange(w, device=device).view(1, w)

    def dist(cy: int, cx: int) -> Tensor:  # (h, w) circular Chebyshev distance in bins
        dy = (iy - cy).abs()
        dx = (ix - cx).abs()
        return torch.maximum(torch.minimum(dy, h - dy), torch.minimum(dx, w - dx))

    centres = [(round(ky * h / scale) % h, round(kx * w / scale) % w)
               for ky in range(scale) for kx in range(scale) if (ky, kx) != (0, 0)]
    nearest = torch.stack([dist(cy, cx) for cy, cx in centres]).amin(dim=0)  # (h, w)
    near_dc = dist(0, 0) <= GRID_PEAK_BINS  # what mean removal and the window leave of DC: not background
    peak = nearest <= GRID_PEAK_BINS
    ring = (nearest > GRID_PEAK_BINS) & (nearest <= GRID_RING_BINS) & ~near_dc
    return peak, ring


def _grid_energy(y: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(N, 1, h, w) float64 Y -> (peak, ring) mean spectral power per bin, each (N,)."""
    h, w = y.shape[-2:]
    power = _windowed_power(y)[:, 0]  # (N, h, w)
    peak, ring = _grid_masks(h, w, scale, y.device)
    return power[:, peak].mean(dim=1), power[:, ring].mean(dim=1)


def gridding_score(sr: Tensor, hr: Tensor, scale: int) -> Tensor:
    """Excess spectral energy of SR at the LR grid's periodic frequencies over HR's; 0-dim float64.

    Inputs are (B, C, H, W) uint8 batches (one image: B = 1), scored on the protocol's
    border-cropped Y. A pattern that repeats every `scale` HR pixels (the checkerboard of
    pixel shuffle early in training) is a set of spectral lines at multiples of 1/scale
    cycles/px. Per image, the peak contrast is the mean power in the bins at those
    frequencies (DC excluded, +-1 bin for the Hann window's spread) over the mean power
    of a ring 2-4 bins around them, so broadband detail, real or hallucinated, cancels
    and only line-like energy counts. Pooled over the batch (sums of peak and ring power),
    the score is SR's contrast / HR's: 1 for SR = HR, above 1 where SR adds periodic
    energy HR lacks (gridding), below 1 for smooth upsamplers (bicubic suppresses those
    frequencies). NaN if HR has no energy around the grid frequencies (a flat image).
    """
    y_sr, y_hr = _pair(sr, hr, scale)
    peak, ring = _grid_energy(torch.cat([y_sr, y_hr]), scale)  # (2B,) each
    b = y_sr.shape[0]
    contrast_sr = peak[:b].sum() / ring[:b].sum()
    contrast_hr = peak[b:].sum() / ring[b:].sum()
    if ring[b:].sum() < 1e-6:  # float64 round-off of a flat image, not energy
        return torch.tensor(float("nan"), dtype=torch.float64)
    return contrast_sr / contrast_hr
