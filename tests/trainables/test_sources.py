"""Data sources: each real on-disk format decodes to the right pixels, in order, split by image."""

import os
import socket
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables import sources
from trainables.config import DataConfig
from trainables.errors import UserError
from trainables.data import load_images
from trainables.sources import read_stl10_bin, val_indices


def cfg(source, path, **kw):
    return DataConfig(source=source, path=str(path), **kw)


def save_png(path, value, size=(40, 30), mode="RGB"):
    """A flat image whose pixels all hold `value`; size is (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def assert_one_line_naming(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert str(path) in msg


# ----------------------------------------------------------------------------- split rule


def test_val_indices_are_spread_evenly_and_ignore_any_seed():
    assert val_indices(100, 16) == [3, 9, 15, 21, 28, 34, 40, 46, 53, 59, 65, 71, 78, 84, 90, 96]
    assert val_indices(64, 16) == [2 + 4 * k for k in range(16)]  # exactly 4 * val_images: all 16
    assert val_indices(63, 16) == [2, 6, 10, 14, 18, 23, 27, 31, 35, 39, 44, 48, 52, 56, 60]  # 63 // 4 of them
    assert val_indices(10, 16) == [2, 7]
    assert val_indices(2, 16) == [1]


# ----------------------------------------------------------------------------- folder


def test_folder_is_recursive_sorted_and_converts_every_mode_to_rgb(tmp_path):
    root = tmp_path / "imagenet"
    save_png(root / "b_class" / "z.png", (1, 2, 3))
    save_png(root / "a_class" / "img1.png", (10, 20, 30))
    save_png(root / "a_class" / "sub" / "x.png", 77, mode="L")  # gray
    save_png(root / "a_class" / "y.bmp", (5, 6, 7, 0), mode="RGBA")  # alpha dropped
    pal = Image.new("P", (40, 30), 0)
    pal.putpalette([9, 8, 7] * 256)
    pal.save(root / "b_class" / "p.png")
    Image.fromarray(np.full((30, 40), 65535, np.uint16)).save(root / "b_class" / "q16.png")  # 16-bit gray
    save_png(root / ".hidden" / "h.png", (200, 200, 200))
    save_png(root / "a_class" / ".h.png", (200, 200, 200))
    (root / "a_class" / "notes.txt").write_text("not an image")

    images = sources._read_folder(cfg("folder", root, patch_size=16))
    # order: a_class/img1.png, a_class/sub/x.png, a_class/y.bmp, b_class/p.png, b_class/q16.png, b_class/z.png
    got = [tuple(int(v) for v in img[3, 4]) for img in images]
    assert got == [(10, 20, 30), (77, 77, 77), (5, 6, 7), (9, 8, 7), (255, 255, 255), (1, 2, 3)]
    for img in images:
        assert img.shape == (30, 40, 3) and img.dtype == np.uint8 and img.flags.c_contiguous


def test_folder_limit_decodes_only_the_first_images_and_split_is_by_image(tmp_path):
    for k in range(12):
        save_png(tmp_path / f"{k:02d}.png", (k, 0, 0))
    (tmp_path / "99.png").write_bytes(b"garbage after the limit is never opened")
    train, val = load_images(cfg("folder", tmp_path, limit=12, patch_size=16, val_images=16))
    assert [int(i[0, 0, 0]) for i in val] == [2, 6, 10]  # val_indices(12, 16): 12 // 4 images
    assert [int(i[0, 0, 0]) for i in train] == [0, 1, 3, 4, 5, 7, 8, 9, 11]
    train2, val2 = load_images(cfg("folder", tmp_path, limit=12, patch_size=16, val_images=16))
    assert all(np.array_equal(a, b) for a, b in zip(train + val, train2 + val2))
    train, val = load_images(cfg("folder", tmp_path, limit=8, patch_size=16, val_images=1))
    assert [int(i[0, 0, 0]) for i in val] == [4] and len(train) == 7


def test_folder_errors_are_one_line_and_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", missing))
    assert_one_line_naming(e, missing)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", empty))
    assert_one_line_naming(e, empty)
    assert ".png" in str(e.value) and ".jpg" in str(e.value)

    bad = tmp_path / "bad"
    save_png(bad / "a.png", (1, 1, 1), size=(80, 80))
    (bad / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", bad, patch_size=64))
    assert_one_line_naming(e, bad / "b.png")

    truncated = tmp_path / "trunc"
    save_png(truncated / "a.png", (1, 1, 1), size=(80, 80))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(truncated / "b.jpg")
    data = (truncated / "b.jpg").read_bytes()
    (truncated / "b.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", truncated, patch_size=64))
    assert_one_line_naming(e, truncated / "b.jpg")

    small = tmp_path / "small"
    save_png(small / "a.png", (1, 1, 1), size=(80, 80))
    save_png(small / "b.png", (1, 1, 1), size=(100, 50))
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", small, patch_size=64))
    assert_one_line_naming(e, small / "b.png")
    assert "100x50" in str(e.value) and "64" in str(e.value)

    one = tmp_path / "one"
    save_png(one / "a.png", (1, 1, 1), size=(80, 80))
    with pytest.raises(UserError) as e:
        load_images(cfg("folder", one))
    assert_one_line_naming(e, one)


# ----------------------------------------------------------------------------- celeba


def test_celeba_reads_the_aligned_folder_or_its_parent(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for k in range(1, 6):
        Image.new("RGB", (178, 218), (40 * k, 100, 200)).save(folder / f"{k:06d}.jpg", quality=95)
    for path in (folder, tmp_path / "celeba"):
        images = sources._read_celeba(cfg("celeba", path))
        assert len(images) == 5
        assert all(img.shape == (218, 178, 3) for img in images)
        assert [int(img[100, 80, 0]) for img in images] == pytest.approx([40, 80, 120, 160, 200], abs=2)
        assert int(images[0][100, 80, 2]) == pytest.approx(200, abs=2)
    train, val = load_images(cfg("celeba", tmp_path / "celeba", limit=4))
    assert len(train) == 3 and len(val) == 1

    with pytest.raises(UserError) as e:
        load_images(cfg("celeba", tmp_path))  # holds only celeba/, not img_align_celeba/
    assert_one_line_naming(e, tmp_path)
    assert "img_align_celeba" in str(e.value)


# ----------------------------------------------------------------------------- stl10


def write_stl10(path, images_hwc):
    """Write (N, 96, 96, 3) images in STL-10's layout: per image, per channel, column-major."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(images_hwc.transpose(0, 3, 2, 1)).tofile(path)


def stl10_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)


def test_stl10_binary_pixels_land_where_stl10_and_torchvision_put_them(tmp_path):
    from torchvision.datasets import STL10

    path = tmp_path / "stl10_binary" / "unlabeled_X.bin"
    path.parent.mkdir()
    raw = np.zeros((3, 3, 96, 96), np.uint8)  # (N, C, col, row) as the file stores it
    raw[1, 0, 70, 5] = 200  # image 1, red, column 70, row 5
    raw[1, 1, 3, 90] = 100  # image 1, green, column 3, row 90
    raw.tofile(path)

    images = read_stl10_bin(path)
    assert images.shape == (3, 96, 96, 3)
    assert images[1, 5, 70, 0] == 200 and images[1, 90, 3, 1] == 100
    assert int(images.sum()) == 300

    # torchvision's own reader (name-mangled private method) as the oracle
    tv_images, _ = STL10._STL10__loadfile(types.SimpleNamespace(root=str(tmp_path), base_folder="stl10_binary"),
                                          "unlabeled_X.bin")
    assert np.array_equal(tv_images.transpose(0, 2, 3, 1), images)  # (N, C, H, W) -> (N, H, W, C)


def test_stl10_splits_limit_and_root_forms(tmp_path):
    train_x, unlabeled_x = stl10_images(2, 1), stl10_images(3, 2)
    write_stl10(tmp_path / "stl10_binary" / "train_X.bin", train_x)
    write_stl10(tmp_path / "stl10_binary" / "unlabeled_X.bin", unlabeled_x)

    images = sources._read_stl10(cfg("stl10", tmp_path, stl10_split="train+unlabeled", limit=4))
    assert len(images) == 4
    for got, want in zip(images, [train_x[0], train_x[1], unlabeled_x[0], unlabeled_x[1]]):
        assert np.array_equal(got, want)
    images = sources._read_stl10(cfg("stl10", tmp_path / "stl10_binary"))  # default split: unlabeled
    assert len(images) == 3 and np.array_equal(images[2], unlabeled_x[2])
    train, val = load_images(cfg("stl10", tmp_path, stl10_split="train+unlabeled"))
    assert val_indices(5, 16) == [2]
    assert len(train) == 4 and np.array_equal(val[0], unlabeled_x[0])


def test_stl10_missing_truncated_and_too_large_patch(tmp_path):
    with pytest.raises(UserError) as e:
        load_images(cfg("stl10", tmp_path, stl10_split="test"))
    assert_one_line_naming(e, tmp_path)
    assert "test_X.bin" in str(e.value) and "data.download=true" in str(e.value)

    bad = tmp_path / "stl10_binary" / "unlabeled_X.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"\0" * (96 * 96 * 3 + 10))
    with pytest.raises(UserError) as e:
        load_images(cfg("stl10", tmp_path))
    assert_one_line_naming(e, bad)

    with pytest.raises(UserError) as e:
        load_images(cfg("stl10", tmp_path, patch_size=128))
    assert "stl10" in str(e.value) and "96x96" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- imagenet64


def imagenet_rows(images_hwc):
    """Downsampled-ImageNet rows: the R plane, then G, then B, each row-major."""
    n = len(images_hwc)
    return np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2)).reshape(n, -1)


def test_imagenet64_npz_channel_order_and_orientation(tmp_path):
    data = np.zeros((3, 3 * 64 * 64), np.uint8)
    data[1, 0 * 4096 + 2 * 64 + 50] = 10  # image 1, R, row 2, column 50
    data[1, 1 * 4096 + 2 * 64 + 50] = 20  # G
    data[1, 2 * 4096 + 2 * 64 + 50] = 30  # B
    path = tmp_path / "train_data_batch_1.npz"
    np.savez(path, data=data, labels=np.arange(3), mean=np.zeros(12288))
    images = sources._read_imagenet64(cfg("imagenet64", path))
    assert len(images) == 3 and images[1].shape == (64, 64, 3)
    assert images[1][2, 50].tolist() == [10, 20, 30]
    assert int(sum(img.sum() for img in images)) == 60
    # the dataset authors' own unpacking, as an oracle
    x = data
    official = np.dstack((x[:, :4096], x[:, 4096:8192], x[:, 8192:])).reshape(3, 64, 64, 3)
    assert all(np.array_equal(a, b) for a, b in zip(images, official))


def test_imagenet64_found_in_a_shared_data_root(tmp_path):
    # search_spaces/datasets.yaml points every source at one root: stl10_binary/,
    # img_align_celeba/ and imagenet64/ side by side
    (tmp_path / "imagenet64").mkdir()
    data = np.full((2, 3 * 64 * 64), 7, np.uint8)
    np.savez(tmp_path / "imagenet64" / "train_data_batch_1.npz", data=data, labels=np.ones(2))
    images = sources._read_imagenet64(cfg("imagenet64", tmp_path))
    assert len(images) == 2 and int(images[0][0, 0, 0]) == 7


def test_imagenet64_batches_in_numeric_order_and_limit_stops_early(tmp_path):
    want = []
    for b in (1, 2, 10):
        imgs = np.random.default_rng(b).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
        want.append(imgs)
        np.savez_compressed(tmp_path / f"train_data_batch_{b}.npz", data=imagenet_rows(imgs), labels=np.ones(4))
    np.savez(tmp_path / "val_data.npz", data=imagenet_rows(want[0][:1]), labels=np.ones(1))  # ignored
    images = sources._read_imagenet64(cfg("imagenet64", tmp_path))
    assert len(images) == 12
    assert all(np.array_equal(a, b) for a, b in zip(images, np.concatenate(want)))

    (tmp_path / "train_data_batch_10.npz").write_bytes(b"corrupt, but limit never opens it")
    images = sources._read_imagenet64(cfg("imagenet64", tmp_path, limit=6))
    assert len(images) == 6 and np.array_equal(images[5], want[1][1])
    with pytest.raises(UserError) as e:
        sources._read_imagenet64(cfg("imagenet64", tmp_path))
    assert_one_line_naming(e, tmp_path / "train_data_batch_10.npz")

    only_val = tmp_path / "val"
    only_val.mkdir()
    np.savez(only_val / "val_data.npz", data=imagenet_rows(want[2]), labels=np.ones(4))
    train, val = load_images(cfg("imagenet64", only_val))
    assert len(train) == 3 and np.array_equal(val[0], want[2][2])


def test_imagenet64_errors(tmp_path):
    with pytest.raises(UserError) as e:
        load_images(cfg("imagenet64", tmp_path))
    assert_one_line_naming(e, tmp_path)
    np.savez(tmp_path / "a.npz", labels=np.ones(3))
    with pytest.raises(UserError) as e:
        load_images(cfg("imagenet64", tmp_path / "a.npz"))
    assert_one_line_naming(e, tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", data=np.zeros((3, 1000), np.uint8))
    with pytest.raises(UserError) as e:
        load_images(cfg("imagenet64", tmp_path / "b.npz"))
    assert_one_line_naming(e, tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", data=np.zeros((3, 3 * 32 * 32), np.uint8))  # Imagenet32 reads, but 32 < 64
    with pytest.raises(UserError) as e:
        load_images(cfg("imagenet64", tmp_path / "c.npz"))
    assert "32x32" in str(e.value) and "64" in str(e.value) and "\n" not in str(e.value)
    assert zipfile.is_zipfile(tmp_path / "c.npz")


# ----------------------------------------------------------------------------- builtin


BUILTIN_SHAPES = [(512, 512), (427, 640), (500, 741), (512, 512), (872, 1000), (512, 512), (303, 384),
                  (512, 512), (512, 512), (512, 512), (512, 512), (191, 384), (172, 448)]


def test_builtin_loads_real_photographs_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the builtin source touched the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    train, val = load_images(DataConfig())
    assert [img.shape[:2] for img in train] == BUILTIN_SHAPES
    assert [img.shape for img in val] == [(300, 451, 3), (400, 600, 3)]  # chelsea, coffee
    assert all(img.dtype == np.uint8 and img.shape[2] == 3 for img in train + val)
    assert all(img.std() > 10 for img in train + val)  # photographs, not flat fills
    train2, val2 = load_images(DataConfig(patch_size=96))
    assert all(np.array_equal(a, b) for a, b in zip(train + val, train2 + val2))


def test_builtin_limit_val_images_and_large_patches():
    train, val = load_images(DataConfig(limit=3, val_images=1))
    assert [img.shape[:2] for img in train] == BUILTIN_SHAPES[:3] and [v.shape for v in val] == [(300, 451, 3)]
    train, val = load_images(DataConfig(patch_size=256))
    assert len(train) == 11 and len(val) == 2  # page (191 high) and text (172) are left out
    with pytest.raises(UserError) as e:
        load_images(DataConfig(patch_size=320))  # larger than chelsea's 300 rows
    assert "chelsea" in str(e.value) and "\n" not in str(e.value)


def test_builtin_without_scikit_image_says_what_to_do(monkeypatch):
    real = sources.importlib.util.find_spec
    monkeypatch.setattr(sources.importlib.util, "find_spec",
                        lambda name, *a: None if name == "skimage" else real(name, *a))
    with pytest.raises(UserError, match="scikit-image"):
        load_images(DataConfig())


# ----------------------------------------------------------------------------- div2k


def _write_div2k(root, train=5, valid=3, flickr=1, seed=0):
    """A DIV2K-layout folder of random RGB PNGs; returns {relative path: array}."""
    rng = np.random.default_rng(seed)
    written = {}
    folders = [("DIV2K_train_HR", range(1, train + 1), "{:04d}.png"),
               ("DIV2K_valid_HR", range(801, 801 + valid), "{:04d}.png"),
               ("Flickr2K/Flickr2K_HR", range(1, flickr + 1), "{:06d}.png")]
    for folder, numbers, pattern in folders:
        if not numbers:
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / folder / pattern.format(n))
            written[f"{folder}/{pattern.format(n)}"] = arr
    return written


def test_div2k_reads_the_layout_validates_on_the_valid_folder_and_caches(tmp_path, monkeypatch):
    from trainables import div2k

    written = _write_div2k(tmp_path)
    cfg = DataConfig(source="div2k", path=str(tmp_path), val_images=2, patch_size=32)
    train, val = load_images(cfg)
    want_train = [written[f"DIV2K_train_HR/{n:04d}.png"] for n in range(1, 6)] + [written["Flickr2K/Flickr2K_HR/000001.png"]]
    assert len(train) == 6 and all(np.array_equal(a, b) for a, b in zip(train, want_train))
    # two of the three official validation images, spread evenly: 0801 and 0803
    assert all(np.array_equal(a, written[f"DIV2K_valid_HR/{n:04d}.png"]) for a, n in zip(val, (801, 803)))
    assert len(list((tmp_path / ".srstudy-cache").glob("*.npy"))) == 8
    # a second trial maps the cached arrays and decodes nothing
    monkeypatch.setattr(div2k, "decode_image", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    train2, val2 = load_images(cfg)
    assert all(isinstance(a, np.memmap) and np.array_equal(a, b) for a, b in zip(train2 + val2, train + val))
    monkeypatch.undo()
    assert [a.shape for a in load_images(DataConfig(source="div2k", path=str(tmp_path), limit=2, patch_size=32))[0]] == [(40, 48, 3)] * 2
    # an edited image is decoded afresh (size and mtime are in the entry's name)
    new = np.full((40, 48, 3), 7, np.uint8)
    Image.fromarray(new).save(tmp_path / "DIV2K_train_HR" / "0001.png")
    os.utime(tmp_path / "DIV2K_train_HR" / "0001.png", ns=(1, 1))
    assert np.array_equal(load_images(cfg)[0][0], new)


def test_div2k_without_a_valid_folder_splits_training_images_and_errors_are_one_line(tmp_path):
    _write_div2k(tmp_path, train=8, valid=0, flickr=0)
    train, val = load_images(DataConfig(source="div2k", path=str(tmp_path), val_images=1, cache_decoded=False,
                                            patch_size=32))
    assert (len(train), len(val)) == (7, 1) and not (tmp_path / ".srstudy-cache").exists()
    for path, words in ((tmp_path / "nothing", "DIV2K_train_HR"),):
        with pytest.raises(UserError, match=words) as err:
            load_images(DataConfig(source="div2k", path=str(path)))
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="patch_size 64"):
        load_images(DataConfig(source="div2k", path=str(tmp_path), patch_size=64))


def _zip_of(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f.relative_to(folder.parent).as_posix())
    return zip_path


def test_div2k_download_checks_the_published_checksum_and_unpacks(tmp_path, monkeypatch):
    import hashlib

    from trainables import div2k

    src = tmp_path / "server"
    written = _write_div2k(src, train=4, valid=2, flickr=0)
    archives = {}
    for name in ("DIV2K_train_HR", "DIV2K_valid_HR"):
        z = _zip_of(src / name, tmp_path / f"{name}.zip")
        data = z.read_bytes()
        archives[name] = div2k.Archive(z.as_uri(), len(data), hashlib.sha256(data).hexdigest(), name)
    monkeypatch.setattr(div2k, "ARCHIVES", archives)
    root = tmp_path / "data"
    train, val = load_images(DataConfig(source="div2k", path=str(root), download=True, val_images=1, patch_size=32))
    assert len(train) == 4 and np.array_equal(val[0], written["DIV2K_valid_HR/0802.png"])
    assert (root / "DIV2K_train_HR.zip").is_file()

    good = archives["DIV2K_valid_HR"]
    wrong = div2k.Archive(good.url, good.size, "0" * 64, good.folder)
    with pytest.raises(UserError, match="SHA-256") as err:
        div2k.fetch(wrong, tmp_path / "wrong")
    assert "\n" not in str(err.value)

    # a download cut short: the size is not the published one
    cut = tmp_path / "cut" / "DIV2K_valid_HR.zip"
    cut.parent.mkdir()
    cut.write_bytes(Path(tmp_path / "DIV2K_valid_HR.zip").read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated") as err:
        div2k.fetch(good, cut.parent)
    assert "\n" not in str(err.value)

    # a damaged archive that matches its (recorded) checksum still fails as one line when unpacked
    broken = tmp_path / "broken.zip"
    broken.write_bytes(Path(tmp_path / "DIV2K_valid_HR.zip").read_bytes()[:-100])
    with pytest.raises(UserError, match="not a readable zip") as err:
        div2k.extract(broken, tmp_path / "out")
    assert "\n" not in str(err.value)

    # no network: a one-line error naming the URL
    offline = div2k.Archive("file:///nonexistent/DIV2K_train_HR.zip", 1, "0" * 64, "DIV2K_train_HR")
    with pytest.raises(UserError, match="fetching file:///nonexistent") as err:
        div2k.fetch(offline, tmp_path / "offline")
    assert "\n" not in str(err.value)


def test_div2k_may_download_other_sources_may_not():
    from trainables.config import ConfigError, load_config

    assert load_config(overrides={"data.source": "div2k", "data.path": "x", "data.download": True}).data.download
    with pytest.raises(ConfigError, match="data.download"):
        load_config(overrides={"data.source": "folder", "data.path": "x", "data.download": True})
