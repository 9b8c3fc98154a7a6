"""The whole-batch sampler: area-weighted draws, dihedral index maps, the pixel bank's gather, video windows."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from trainables.data import dihedral
from trainables.sampler import PixelBank, area_draw, dihedral_maps, epoch_generator, uniform_below
from trainables.video import MARGIN, TrainWindows


def test_area_draw_is_uniform_over_every_offset_of_every_item():
    counts = torch.tensor([1, 3, 6])
    k, offset = area_draw(counts, 20000, epoch_generator(0, 0))
    assert ((offset >= 0) & (offset < counts[k])).all()
    flat = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]])[k] + offset  # (n,) in [0, 10)
    hist = np.bincount(flat.numpy(), minlength=10)
    assert chisquare(hist).pvalue > 0.01
    assert (k == 2).float().mean().item() == pytest.approx(0.6, abs=0.015)


def test_uniform_below_stays_in_range_and_is_uniform():
    high = torch.tensor([1, 2, 5] * 4000)
    u = uniform_below(high, epoch_generator(1, 0))
    assert ((u >= 0) & (u < high)).all()
    assert chisquare(np.bincount(u[2::3].numpy(), minlength=5)).pvalue > 0.01


def test_dihedral_maps_match_the_numpy_views():
    patch = np.random.default_rng(0).integers(0, 256, (5, 5, 1))
    rows, cols = dihedral_maps(5)
    for t in range(8):
        assert np.array_equal(patch[rows[t].numpy(), cols[t].numpy()], dihedral(patch, t))


def test_pixel_bank_gathers_crops_of_images_and_clips_of_any_size():
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), rng.integers(0, 256, (4, 7, 6, 3), dtype=np.uint8)]
    bank = PixelBank(arrays)
    assert bank.nbytes == 9 * 11 * 3 + 4 * 7 * 6 * 3
    assert all(np.array_equal(a, v) for a, v in zip(arrays, bank.arrays))
    k, top, left, t = (torch.tensor(v) for v in ([0, 1], [2, 3], [5, 1], [3, 6]))
    frames = torch.tensor([[0, 0], [3, 1]])  # image: frame 0 twice; clip: frames 3 then 1
    out = bank.cut(k, frames, top, left, t, 4)
    assert out.shape == (2, 6, 4, 4) and out.dtype == torch.uint8
    img = dihedral(arrays[0][2:6, 5:9], 3).transpose(2, 0, 1)
    assert np.array_equal(out[0, :3].numpy(), img) and np.array_equal(out[0, 3:].numpy(), img)
    for j, f in enumerate((3, 1)):
        assert np.array_equal(out[1, 3 * j:3 * j + 3].numpy(), dihedral(arrays[1][f, 3:7, 1:5], 6).transpose(2, 0, 1))


def test_video_windows_weight_clips_by_centre_frames_times_positions():
    # clip 0: 7 frames (3 centres) x 3x3 positions = 27; clip 1: 9 frames (5 centres) x 2x3 = 30
    clips = [np.zeros((7, 18, 18, 3), np.uint8), np.zeros((9, 17, 18, 3), np.uint8)]
    n = 11400
    ds = TrainWindows(clips, frames=3, patch_size=16, augment=True, length=n, seed=4)
    plan = ds.plan()
    cells = {}
    for k, (centres, rows) in enumerate(((3, 3), (5, 2))):
        for c in range(MARGIN, MARGIN + centres):
            for top in range(rows):
                for left in range(3):
                    cells[k, c, top, left] = len(cells)
    assert len(cells) == 57
    keys = zip(*(plan[c].tolist() for c in ("k", "centre", "top", "left")))
    assert chisquare(np.bincount([cells[key] for key in keys], minlength=57)).pvalue > 0.01
    assert chisquare(np.bincount(plan["t"].numpy(), minlength=8)).pvalue > 0.01
    assert abs(plan["backwards"].float().mean().item() - 0.5) < 0.02


def test_video_centre_crops_pick_a_clip_then_a_centre_frame_uniformly():
    clips = [np.zeros((5, 20, 20, 3), np.uint8), np.zeros((9, 20, 24, 3), np.uint8)]
    ds = TrainWindows(clips, frames=1, patch_size=16, crop="center", augment=False, length=4000, seed=0)
    plan = ds.plan()
    assert (plan["k"] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert set(plan["centre"][plan["k"] == 0].tolist()) == {2}
    assert chisquare(np.bincount(plan["centre"][plan["k"] == 1].numpy() - 2, minlength=5)).pvalue > 0.01
    assert set(plan["top"].tolist()) == {2} and set(plan["left"][plan["k"] == 1].tolist()) == {4}


def test_the_bank_moves_to_the_device_only_under_the_cap():
    # the "meta" device stands in for a GPU here: tensors with shapes and no data
    bank = PixelBank([np.zeros((40, 50, 3), np.uint8), np.zeros((30, 30, 3), np.uint8)])
    bank.place(torch.device("meta"), cap_mb=bank.nbytes / 2**20)  # fits exactly
    assert bank.buffer.device.type == "meta" and bank.start.device.type == "meta"
    k = torch.tensor([0, 1], device="meta")
    out = bank.cut(k, torch.zeros(2, 1, dtype=torch.long), torch.tensor([1, 2]), torch.tensor([3, 4]),
                   torch.tensor([0, 5]), 16)
    assert out.shape == (2, 3, 16, 16) and out.device.type == "meta"
    bank.place(torch.device("meta"), cap_mb=0.001)  # too big: stays on the host, batches are copied over
    assert bank.buffer.device.type == "cpu" and bank.device.type == "meta"
    bank.place(torch.device("cpu"), cap_mb=1e6)  # CPU training: nothing moves
    assert bank.buffer is bank.host
