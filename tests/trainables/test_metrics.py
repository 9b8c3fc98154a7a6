"""Tests for trainables.metrics against hand-computed values and scikit-image's SSIM."""

import math

import pytest
import torch
from skimage.metrics import structural_similarity

from trainables.degrade import bicubic_down, bicubic_up, to_float01, to_uint8
from trainables.metrics import (
    METRIC_NAMES,
    PSNR_CAP_DB,
    gridding_score,
    hf_energy_ratio,
    hf_error_ratio,
    psnr,
    rgb_to_y,
    score_pair,
    ssim,
)


def _gray_rgb(value: int, h: int = 20, w: int = 20) -> torch.Tensor:
    return torch.full((1, 3, h, w), value, dtype=torch.uint8)


def _natural_ish(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """(b, c, h, w) uint8: smooth gradients plus noise, so SSIM is neither ~0 nor ~1."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(6 * xx + 4 * yy) * torch.cos(5 * yy)
    x = base + 0.1 * torch.randn(b, c, h, w, generator=g)
    return to_uint8(x.clamp(0, 1))


def _texture(size: int = 96) -> torch.Tensor:
    """(1, 3, size, size) uint8 gray texture: a fine grating (0.37 cycles/px), a coarse one, and noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    tex = 0.5 + 0.2 * torch.sin(2 * math.pi * (0.37 * xx + 0.11 * yy)) + 0.1 * torch.sin(2 * math.pi * 0.05 * xx)
    tex = tex + 0.08 * torch.randn(size, size, generator=g)
    return to_uint8(tex.clamp(0, 1).expand(1, 3, size, size))


def test_rgb_to_y_bt601_studio_range():
    rgb = torch.tensor([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0], [255.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    y = rgb_to_y(rgb)
    assert y.shape == (1, 1, 1, 3)
    assert torch.allclose(y.flatten(), torch.tensor([16.0, 235.0, 16.0 + 65.481]))
    gray = torch.rand(2, 1, 4, 4)
    assert rgb_to_y(gray) is gray  # single-channel images are scored on their own channel


def test_psnr_constant_offset_by_hand():
    # RGB 100 vs 110 everywhere: Y differs by (65.481 + 128.553 + 24.966) * 10 / 255
    # = 219 * 10 / 255 = 8.588 levels, so PSNR = 20 log10(255 / 8.588) = 29.4527 dB.
    value = psnr(_gray_rgb(110), _gray_rgb(100), scale=2)
    assert value.dtype == torch.float64 and value.shape == (1,)
    assert value.item() == pytest.approx(20 * math.log10(255 * 255 / 2190), abs=1e-10)
    assert value.item() == pytest.approx(29.4527, abs=1e-4)


def test_psnr_crops_the_border_and_averages_over_the_interior():
    hr = torch.full((1, 1, 20, 20), 50, dtype=torch.uint8)
    sr = hr.clone()
    sr[..., :2, :] = 0  # inside the 2-px border crop: ignored
    assert psnr(sr, hr, scale=2).item() == PSNR_CAP_DB  # equal interiors: the cap, not inf
    sr[..., 5:9, 5:9] += 16  # 16 of the 16x16 = 256 interior pixels off by 16: MSE = 16
    assert psnr(sr, hr, scale=2).item() == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-10)  # 36.0896


def test_psnr_is_batched():
    hr = torch.cat([_gray_rgb(100), _gray_rgb(100)])
    sr = torch.cat([_gray_rgb(110), _gray_rgb(120)])
    values = psnr(sr, hr, scale=2)
    assert values.shape == (2,)
    assert values[1].item() == pytest.approx(values[0].item() - 20 * math.log10(2), abs=1e-10)


def test_metrics_require_uint8():
    with pytest.raises(TypeError, match="uint8"):
        psnr(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), scale=2)


@pytest.mark.parametrize("channels,scale", [(3, 2), (3, 4), (1, 3)])
def test_ssim_matches_scikit_image(channels, scale):
    hr = _natural_ish(3, channels, 48, 40, seed=0)
    sr = _natural_ish(3, channels, 48, 40, seed=1)
    ours = ssim(sr, hr, scale)
    assert ours.dtype == torch.float64 and ours.shape == (3,)
    for b in range(3):
        y_sr = rgb_to_y(sr[b : b + 1].double())[0, 0, scale:-scale, scale:-scale].numpy()
        y_hr = rgb_to_y(hr[b : b + 1].double())[0, 0, scale:-scale, scale:-scale].numpy()
        # skimage filters with reflect padding, then averages only the map's interior
        # ((win_size - 1) // 2 = 5 px cropped), which is exactly our valid region.
        ref = structural_similarity(
            y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert 0.05 < ref < 0.95
        assert ours[b].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_of_identical_images_is_one():
    hr = _natural_ish(1, 3, 30, 30, seed=3)
    assert ssim(hr, hr, 2).item() == pytest.approx(1.0, abs=1e-12)


def test_hf_energy_ratio_identity_is_exactly_one_and_flat_is_zero():
    hr = _texture()
    assert hf_energy_ratio(hr, hr, 2).item() == 1.0
    assert hf_error_ratio(hr, hr, 2).item() == 0.0
    flat = torch.full_like(hr, 128)
    assert hf_energy_ratio(flat, hr, 2).item() == pytest.approx(0.0, abs=1e-20)  # nothing left once the mean is gone
    assert hf_error_ratio(flat, hr, 2).item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("scale", [2, 4])
def test_hf_energy_ratio_bicubic_misses_the_high_band(scale):
    hr = _texture()
    sr = to_uint8(bicubic_up(bicubic_down(to_float01(hr), scale), scale))
    energy = hf_energy_ratio(sr, hr, scale).item()
    # The 0.37 cycles/px grating is above both LR Nyquist limits (0.25, 0.125) and is
    # filtered out of the LR: measured 0.0015 (x2) and 0.0007 (x4).
    assert 0.0 < energy < 0.01
    assert hf_error_ratio(sr, hr, scale).item() == pytest.approx(1.0, abs=0.02)  # measured 0.988, 0.999


def test_hf_energy_ratio_sees_hallucinated_texture():
    hr = _natural_ish(1, 1, 64, 64, seed=4)
    sharper = to_uint8((to_float01(hr) * 2 - 0.5).clamp(0, 1))  # contrast x2: more high-band energy
    assert hf_energy_ratio(sharper, hr, 2).item() > 1.5


def test_score_pair_agrees_with_the_batched_metrics():
    hrs = [_natural_ish(1, 3, 40, 36, seed=5)[0], _natural_ish(1, 1, 30, 44, seed=6)[0]]
    srs = [_natural_ish(1, 3, 40, 36, seed=7)[0], _natural_ish(1, 1, 30, 44, seed=8)[0]]
    for sr, hr in zip(srs, hrs):
        one = score_pair(sr, hr, 2)
        assert set(one) == set(METRIC_NAMES)
        assert one["psnr"] == psnr(sr[None], hr[None], 2).item()
        assert one["ssim"] == pytest.approx(ssim(sr[None], hr[None], 2).item(), abs=1e-15)
        assert one["hf_energy_ratio"] == pytest.approx(hf_energy_ratio(sr[None], hr[None], 2).item(), rel=1e-12)
        assert one["hf_error_ratio"] == pytest.approx(hf_error_ratio(sr[None], hr[None], 2).item(), rel=1e-12)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        psnr(_gray_rgb(1, 20, 20), _gray_rgb(1, 20, 22), scale=2)


def test_identical_and_flat_images_score_finite_documented_values():
    """A flat patch reproduced exactly (MSE 0) scores the cap, 100 dB; identical images score SSIM 1,
    high-band energy ratio 1 and error ratio 0, flat or textured; nothing is inf."""
    flat = _gray_rgb(100)
    textured = torch.randint(0, 256, (1, 3, 24, 24), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for img in (flat, textured):
        scores = score_pair(img[0], img[0].clone(), scale=2)
        assert scores == {"psnr": 100.0, "ssim": 1.0, "hf_energy_ratio": 1.0, "hf_error_ratio": 0.0}
    # one exact patch among others: the mean stays finite and counts it at the cap
    values = psnr(torch.cat([flat, _gray_rgb(110)]), torch.cat([flat, _gray_rgb(100)]), scale=2)
    assert values.tolist() == [100.0, pytest.approx(20 * math.log10(255 * 255 / 2190), abs=1e-10)]
    assert math.isfinite(values.mean().item())
    # the cap only touches exact images: one pixel of the 16x16 interior off by 219/255 Y levels is 73.5 dB
    sr = flat.clone()
    sr[0, :, 5, 5] += 1  # RGB +1 -> Y +219/255 levels
    assert psnr(sr, flat, scale=2).item() == pytest.approx(10 * math.log10(255**2 * 256 / (219 / 255) ** 2), abs=1e-9)


# ----------------------------------------------------------------------------- gridding


def _photo_crops(size: int = 64) -> torch.Tensor:
    """(16, 3, size, size) uint8: four crops from each of four scikit-image photographs."""
    import skimage.data as data

    crops = []
    for photo in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        t = torch.from_numpy(photo).permute(2, 0, 1)
        h, w = t.shape[1:]
        for i in range(4):
            y, x = (h - size) * i // 4, (w - size) * ((i * 7) % 4) // 4
            crops.append(t[:, y : y + size, x : x + size])
    return torch.stack(crops)


def _periodic(size: int, scale: int, std: float) -> torch.Tensor:
    """(size, size) float pattern repeating every `scale` px (pixel shuffle's checkerboard), zero mean."""
    tile = torch.randn(scale, scale, generator=torch.Generator().manual_seed(0))
    tile = (tile - tile.mean()) / tile.std() * std
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return tile[yy % scale, xx % scale]


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("scale, raised", [(2, 5.0), (4, 1.4)])
def test_gridding_score_rises_with_a_checkerboard_not_with_smooth_or_broadband_changes(scale, raised):
    import torchvision.transforms.functional as TF

    hr = _photo_crops()
    assert gridding_score(hr, hr, scale).item() == 1.0
    # +-3 grey levels repeating every `scale` px: barely visible, and the score multiplies
    assert gridding_score(_u8(hr.float() + _periodic(64, scale, 3.0)), hr, scale) > raised
    # smooth images lose energy at those frequencies: bicubic upsampling, a Gaussian blur
    bicubic = to_uint8(bicubic_up(bicubic_down(to_float01(hr), scale), scale))
    assert gridding_score(bicubic, hr, scale) < 0.8
    assert gridding_score(_u8(TF.gaussian_blur(hr.float(), 5, 1.0)), hr, scale) < 0.9
    # broadband changes (white noise, sharpening: the high band as a whole) leave it near 1
    noisy = _u8(hr.float() + 3.0 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(1)))
    assert gridding_score(noisy, hr, scale).item() == pytest.approx(1.0, abs=0.1)
    sharp = _u8(2 * hr.float() - TF.gaussian_blur(hr.float(), 5, 1.0))
    assert gridding_score(sharp, hr, scale).item() == pytest.approx(1.0, abs=0.2)


def test_gridding_score_of_a_flat_reference_is_nan():
    flat = _gray_rgb(128, 32, 32)
    assert math.isnan(gridding_score(flat, flat, 2).item())
