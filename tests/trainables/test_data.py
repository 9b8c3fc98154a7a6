"""Training and validation patches, and the loader: exact crops, determinism, sharding."""

import numpy as np
import pytest
import torch

from trainables.data import TrainPatches, dihedral, grid_offsets, make_loader, val_patches


def coded_image(h, w, k):
    """Pixel (y, x) of image k holds (y, x, k), so a patch tells where it was cut from."""
    assert h < 256 and w < 256
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = np.arange(h)[:, None]
    img[:, :, 1] = np.arange(w)[None, :]
    img[:, :, 2] = k
    return img


def hwc(patch: torch.Tensor) -> np.ndarray:
    return patch.numpy().transpose(1, 2, 0)


def test_dihedral_gives_eight_distinct_views_and_t0_is_identity():
    p = coded_image(8, 8, 0)
    views = [dihedral(p, t) for t in range(8)]
    assert np.array_equal(views[0], p)
    assert len({v.tobytes() for v in views}) == 8
    assert np.array_equal(views[1][0, 0], p[0, 7])  # a quarter turn counter-clockwise
    assert np.array_equal(views[4], p[:, ::-1])


def test_grid_offsets():
    assert grid_offsets(100, 64, 1) == [18]  # (100 - 64) // 2
    assert grid_offsets(100, 32, 2) == [9, 59]  # centred on 25 and 75
    assert grid_offsets(96, 64, 2) == [0, 32]  # clamped inside the image
    assert grid_offsets(64, 64, 3) == [0, 0, 0]


def test_items_are_a_pure_function_of_seed_epoch_and_index():
    images = [coded_image(100, 120, 0), coded_image(80, 90, 1)]
    a = TrainPatches(images, 32, "random", True, length=64, seed=7)
    b = TrainPatches(images, 32, "random", True, length=64, seed=7)
    b[5]  # reading other items first changes nothing
    assert all(torch.equal(a[i], b[i]) for i in range(64))
    a.set_epoch(1)
    assert sum(torch.equal(a[i], b[i]) for i in range(64)) <= 1
    b.set_epoch(1)
    assert all(torch.equal(a[i], b[i]) for i in range(64))
    c = TrainPatches(images, 32, "random", True, length=64, seed=8)
    c.set_epoch(1)
    assert sum(torch.equal(a[i], c[i]) for i in range(64)) <= 1
    assert a[3].dtype == torch.uint8 and a[3].shape == (3, 32, 32) and a[3].is_contiguous()
    with pytest.raises(IndexError):
        a[64]


def locate(ds: TrainPatches, i: int) -> tuple[int, ...]:
    """(image index, top, left, dihedral t) of item i in the dataset's current epoch plan."""
    plan = ds.plan()
    return tuple(int(plan[key][i]) for key in ("k", "top", "left", "t"))


def test_random_crops_without_augment_are_exact_crops():
    images = [coded_image(100, 120, 0), coded_image(70, 90, 1)]
    ds = TrainPatches(images, 32, "random", augment=False, length=300, seed=0)
    offsets = set()
    for i in range(300):
        patch = hwc(ds[i])
        top, left, k = (int(v) for v in patch[0, 0])
        assert np.array_equal(patch, images[k][top:top + 32, left:left + 32])
        assert (k, top, left, 0) == locate(ds, i)
        offsets.add((k, top, left))
    assert len(offsets) > 250  # random positions, not a few fixed ones


def test_augmented_crops_are_dihedral_views_of_a_crop_and_use_all_eight():
    images = [coded_image(100, 120, 0)]
    ds = TrainPatches(images, 32, "random", augment=True, length=200, seed=3)
    seen = set()
    for i in range(200):
        k, top, left, t = locate(ds, i)
        assert np.array_equal(hwc(ds[i]), dihedral(images[k][top:top + 32, left:left + 32], t))
        seen.add(t)
    assert seen == set(range(8))


def test_center_crop_is_the_centre_and_images_are_picked_uniformly():
    images = [coded_image(100, 120, 0), coded_image(41, 250, 1)]
    ds = TrainPatches(images, 32, "center", augment=False, length=400, seed=0)
    picks = []
    for i in range(400):
        patch = hwc(ds[i])
        k = int(patch[0, 0, 2])
        picks.append(k)
        top, left = [(34, 44), (4, 109)][k]
        assert np.array_equal(patch, images[k][top:top + 32, left:left + 32])
    assert 150 < picks.count(1) < 250


def test_random_crops_weight_images_by_their_crop_positions():
    # 80x80 has 17*17 = 289 positions of a 64 crop, 96x96 has 33*33 = 1089: 21% vs 79%
    images = [coded_image(80, 80, 0), coded_image(96, 96, 1)]
    ds = TrainPatches(images, 64, "random", augment=False, length=4000, seed=0)
    small = sum(locate(ds, i)[0] == 0 for i in range(4000)) / 4000
    assert small == pytest.approx(289 / 1378, abs=0.025)


def test_rejects_images_smaller_than_the_patch():
    with pytest.raises(ValueError, match="smaller than patch 64"):
        TrainPatches([coded_image(100, 100, 0), coded_image(63, 200, 1)], 64, length=8)


def test_val_patches_are_centre_crops_or_a_fixed_grid():
    images = [coded_image(100, 120, 0), coded_image(200, 60, 1)]
    one = val_patches(images, 32, 1)
    assert one.dtype == torch.uint8 and one.shape == (2, 3, 32, 32)
    assert np.array_equal(hwc(one[0]), images[0][34:66, 44:76])
    assert np.array_equal(hwc(one[1]), images[1][84:116, 14:46])

    eight = val_patches(images, 32, 8)
    assert eight.shape == (16, 3, 32, 32)
    corners = [tuple(int(v) for v in hwc(p)[0, 0]) for p in eight]
    # wide image: 2 rows x 4 columns; tall image: 4 rows x 2 columns; row-major
    rows0, cols0 = grid_offsets(100, 32, 2), grid_offsets(120, 32, 4)
    rows1, cols1 = grid_offsets(200, 32, 4), grid_offsets(60, 32, 2)
    assert corners[:8] == [(r, c, 0) for r in rows0 for c in cols0]
    assert corners[8:] == [(r, c, 1) for r in rows1 for c in cols1]
    assert len(set(corners)) == 16
    assert torch.equal(eight, val_patches(images, 32, 8))


def test_loader_batches_drop_the_last_and_shard_by_rank():
    images = [coded_image(100, 120, 0)]
    ds = TrainPatches(images, 32, "random", True, length=70, seed=0)
    batches = list(make_loader(ds, 16, num_workers=0, seed=0))
    assert len(batches) == 4 and all(b.shape == (16, 3, 32, 32) and b.dtype == torch.uint8 for b in batches)
    assert torch.equal(torch.cat(batches), torch.stack([ds[i] for i in range(64)]))

    shards = [list(make_loader(ds, 8, num_workers=0, rank=r, world_size=2, seed=0)) for r in range(2)]
    for r in range(2):
        assert len(shards[r]) == 4  # 35 items per rank, 4 whole batches of 8
        got = torch.cat(shards[r])
        assert torch.equal(got, torch.stack([ds[i] for i in range(r, 64, 2)]))


def test_persistent_workers_follow_set_epoch():
    images = [coded_image(100, 120, 0), coded_image(80, 90, 1)]
    ds = TrainPatches(images, 32, "random", True, length=32, seed=5)
    ref = TrainPatches(images, 32, "random", True, length=32, seed=5)
    loader = make_loader(ds, 8, num_workers=2, seed=0)
    for epoch in range(3):
        ds.set_epoch(epoch)
        ref.set_epoch(epoch)
        got = torch.cat(list(loader))
        assert torch.equal(got, torch.stack([ref[i] for i in range(32)]))


# ----------------------------------------------------------------------------- the vectorised sampler


def per_item_locate(images, p, seed, epoch, i):
    """The per-item sampler the batch plan replaced: a numpy generator per (seed, epoch, item)."""
    rng = np.random.default_rng([seed, epoch, i])
    cols = np.array([img.shape[1] - p + 1 for img in images])
    ends = np.cumsum([(img.shape[0] - p + 1) * c for img, c in zip(images, cols)])
    pos = int(rng.integers(ends[-1]))
    k = int(np.searchsorted(ends, pos, side="right"))
    top, left = divmod(pos - (int(ends[k - 1]) if k else 0), int(cols[k]))
    return k, top, left, int(rng.integers(8))


def test_batch_plan_has_the_per_item_samplers_distribution():
    from scipy.stats import chi2_contingency, chisquare

    # 3*4 + 5*2 = 22 crop positions x 8 transforms = 176 equally likely cells
    images = [coded_image(6, 7, 0), coded_image(8, 5, 1)]
    p, n = 4, 17600
    cells = {(k, top, left, t): j for j, (k, top, left, t) in enumerate(
        (k, top, left, t) for k, img in enumerate(images) for top in range(img.shape[0] - p + 1)
        for left in range(img.shape[1] - p + 1) for t in range(8))}
    ds = TrainPatches(images, p, "random", augment=True, length=n, seed=11)
    plan = ds.plan()
    batch = np.bincount([cells[key] for key in zip(*(plan[c].tolist() for c in ("k", "top", "left", "t")))],
                        minlength=len(cells))
    item = np.bincount([cells[per_item_locate(images, p, 11, 0, i)] for i in range(n)], minlength=len(cells))
    assert batch.sum() == item.sum() == n and (batch > 0).all()
    assert chisquare(batch).pvalue > 0.01  # uniform over (position, transform), as the per-item sampler
    assert chisquare(item).pvalue > 0.01
    assert chi2_contingency(np.stack([batch, item])).pvalue > 0.01  # the two samplers agree
    # images weighted by their crop positions: 12 / 22 and 10 / 22
    assert (plan["k"] == 0).float().mean().item() == pytest.approx(12 / 22, abs=0.01)


def test_batch_plan_is_a_pure_function_of_seed_and_epoch_and_leaves_the_global_rng_alone():
    images = [coded_image(40, 50, 0), coded_image(60, 45, 1)]
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    ds = TrainPatches(images, 16, length=64, seed=3)
    ds.set_epoch(2)
    first = {k: v.clone() for k, v in ds.plan().items()}
    assert torch.equal(torch.rand(1), before)  # drawing the plan took nothing from torch's global generator
    again = TrainPatches(images, 16, length=64, seed=3)
    again.set_epoch(2)
    assert all(torch.equal(first[k], again.plan()[k]) for k in first)
    again.set_epoch(3)
    assert not torch.equal(first["top"], again.plan()["top"])


def test_batch_loader_cuts_whole_batches_on_a_host_bank():
    images = [coded_image(40, 50, 0), coded_image(60, 45, 1)]
    ds = TrainPatches(images, 16, length=48, seed=1)
    ds.place(torch.device("cpu"), cap_mb=0)  # CPU training: the bank stays where it is
    assert ds.bank.buffer.device.type == "cpu"
    loader = make_loader(ds, 16)
    assert len(loader) == 3 and loader.sampler is None
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = torch.cat(list(loader))
        assert torch.equal(got, torch.stack([ds[i] for i in range(48)]))
        for i in range(48):  # the gather is the exact crop and transform
            k, top, left, t = locate(ds, i)
            assert np.array_equal(hwc(got[i]), dihedral(images[k][top:top + 16, left:left + 16], t))
