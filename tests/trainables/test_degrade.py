"""Tests for trainables.degrade: value conventions, modcrop, and the protocol's bicubic LR/SR."""

import numpy as np
import pytest
import torch

from trainables.degrade import (
    bicubic_down,
    bicubic_up,
    hr_to_model,
    model_to_01,
    modcrop,
    nearest_up,
    to_float01,
    to_uint8,
)


def test_uint8_float_round_trip_is_exact():
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x01 = to_float01(levels)
    assert x01.dtype == torch.float32
    assert x01.min() == 0.0 and x01.max() == 1.0
    assert torch.equal(to_uint8(x01), levels)


def test_to_uint8_rounds_and_clamps():
    x01 = torch.tensor([-0.1, 1.4 / 255, 1.6 / 255, 0.5, 1.2])
    assert to_uint8(x01).tolist() == [0, 1, 2, 128, 255]  # 127.5 rounds half to even: 128


def test_to_float01_rejects_floats():
    with pytest.raises(TypeError, match="uint8"):
        to_float01(torch.zeros(1, 3, 4, 4))


def test_model_range_conversions():
    x01 = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert hr_to_model(x01).tolist() == [-1.0, -0.5, 0.0, 1.0]
    assert torch.equal(model_to_01(hr_to_model(x01)), x01)
    assert model_to_01(torch.tensor([-1.5, 1.5])).tolist() == [0.0, 1.0]  # clamped


def test_modcrop_tensor_crops_last_two_dims():
    x = torch.arange(2 * 3 * 13 * 10).view(2, 3, 13, 10)
    out = modcrop(x, 4)
    assert out.shape == (2, 3, 12, 8)
    assert torch.equal(out, x[..., :12, :8])  # top-left kept
    assert modcrop(x, 1).shape == x.shape


def test_modcrop_numpy_is_hwc():
    hwc = np.zeros((13, 10, 3), dtype=np.uint8)
    assert modcrop(hwc, 3).shape == (12, 9, 3)
    assert modcrop(np.zeros((13, 10)), 2).shape == (12, 10)
    with pytest.raises(TypeError):
        modcrop([[1, 2]], 2)


def test_bicubic_down_shape_and_uint8_levels():
    x = torch.rand(2, 3, 24, 16, generator=torch.Generator().manual_seed(0))
    lr = bicubic_down(x, 4)
    assert lr.shape == (2, 3, 6, 4)
    levels = lr * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # quantised like a stored uint8 LR
    assert 0.0 <= lr.min() and lr.max() <= 1.0


def test_bicubic_down_keeps_flat_images_and_filters_nyquist():
    flat = torch.full((1, 1, 12, 12), 100 / 255)
    assert torch.equal(to_uint8(bicubic_down(flat, 3)), torch.full((1, 1, 4, 4), 100, dtype=torch.uint8))
    # A 1-px checkerboard sits at HR's Nyquist frequency, which an x2 LR cannot hold: the
    # antialiased filter turns it into flat mid-gray (128/255) instead of aliasing it
    # (LR pixels near the border, whose kernel the border cuts, land within 3 levels).
    checker = ((torch.arange(32).view(1, 32) + torch.arange(32).view(32, 1)) % 2).float().view(1, 1, 32, 32)
    lr = to_uint8(bicubic_down(checker, 2))  # (1, 1, 16, 16)
    assert torch.equal(lr[..., 2:-2, 2:-2], torch.full((1, 1, 12, 12), 128, dtype=torch.uint8))
    assert (lr.int() - 128).abs().max() <= 3


def test_bicubic_down_needs_modcropped_input():
    with pytest.raises(ValueError, match="modcrop"):
        bicubic_down(torch.rand(1, 3, 13, 12), 2)


def test_bicubic_up_uses_the_matlab_cubic():
    # LR: flat 0.5 with a bright column (0.9) at x=4. At x2, output column i samples
    # source position (i + 0.5)/2 - 0.5, so columns 5..8 sit 1.75, 1.25, 0.75, 0.25 px
    # from the bright column. Keys cubic a = -0.5 (MATLAB imresize) weights at those
    # distances: -0.0234375, -0.0703125, 0.2265625, 0.8671875, so out = 0.5 + 0.4 * w.
    # (torch's default a = -0.75 would give 0.8789... at 0.25 px.)
    lr = torch.full((1, 1, 16, 16), 0.5)
    lr[..., 4] = 0.9
    row = bicubic_up(lr, 2)[0, 0, 8, 5:11]
    expected = torch.tensor([0.490625, 0.471875, 0.590625, 0.846875, 0.846875, 0.590625])
    assert torch.allclose(row, expected, atol=1e-6)


def test_bicubic_up_shape_clamp_and_flat():
    lr = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    sr = bicubic_up(lr, 3)
    assert sr.shape == (2, 3, 15, 21)
    assert 0.0 <= sr.min() and sr.max() <= 1.0
    flat = torch.full((1, 1, 6, 6), 0.25)
    assert torch.allclose(bicubic_up(flat, 4), torch.full((1, 1, 24, 24), 0.25))


def test_nearest_up_replicates_pixels():
    lr = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(2))
    expected = lr.repeat_interleave(3, dim=-2).repeat_interleave(3, dim=-1)
    assert torch.equal(nearest_up(lr, 3), expected)
