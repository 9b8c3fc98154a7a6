"""Video data: frame-folder clips (order, natural sort, the centre frame is the target), windows, the
built-in clips' sub-pixel motion, the temporal-consistency metric, every window x input trained, errors."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables import synthetic_video
from trainables.config import ConfigError, DataConfig, load_config
from trainables.errors import UserError
from trainables.metrics import temporal_consistency
from trainables.train import train
from trainables.validation import Validator
from trainables.clips import frame_paths, list_clips, load_clips
from trainables.sources import natural_key
from trainables.synthetic_video import photo_clip, render_clip
from trainables.video import MARGIN, PLAN_KEYS, TrainWindows, centre_frame, val_windows
from PIL import Image

SIDE = 24  # frame side of the test clips


def locate(ds: TrainWindows, i: int) -> tuple[int, ...]:
    """(clip, centre frame, top, left, dihedral transform, reversed) of item i in the current epoch plan."""
    plan = ds.plan()
    return tuple(int(plan[key][i]) for key in PLAN_KEYS)


def frame_image(clip: int, t: int) -> np.ndarray:
    """A distinct textured frame: its top-left pixel encodes (clip, t), the rest is noise from (clip, t)."""
    img = np.random.default_rng([clip, t]).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    img[0, 0] = (clip, t, 7)
    return img


def write_clips(root: Path, lengths: list[int], name=lambda t: f"frame_{t + 1}.png") -> Path:
    """Clip folders root/clip_{k}/ with `lengths[k]` frames named by `name(t)` (1-based numbers, unpadded)."""
    for k, n in enumerate(lengths):
        folder = root / f"clip_{k}"
        folder.mkdir(parents=True)
        for t in range(n):
            Image.fromarray(frame_image(k, t)).save(folder / name(t))
    return root


def data_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"source": "video_folder", "path": str(root), "patch_size": 16, "val_images": 1, **kw})


# ----------------------------------------------------------------------------- reading clips


def test_natural_sort_orders_numbers_by_value():
    names = ["im10.png", "im2.png", "im1.png", "IM3.png", "frame_0100.png", "frame_099.png"]
    assert sorted(names, key=natural_key) == ["frame_099.png", "frame_0100.png", "im1.png", "im2.png",
                                              "IM3.png", "im10.png"]


def test_frame_folder_clips_are_read_in_natural_order(tmp_path):
    root = write_clips(tmp_path / "clips", [12, 12, 12, 12])
    assert [p.name for p in frame_paths(root / "clip_0")][:4] == ["frame_1.png", "frame_2.png", "frame_3.png",
                                                                  "frame_4.png"]
    assert [p.name for p in frame_paths(root / "clip_0")][-3:] == ["frame_10.png", "frame_11.png", "frame_12.png"]
    train_clips, val_clips = load_clips(data_cfg(root))
    assert len(train_clips) == 3 and len(val_clips) == 1
    # val_indices(4, 1) == [2]: clip_2 validates, the others train, in order
    assert [int(c[0, 0, 0, 0]) for c in train_clips] == [0, 1, 3]
    assert int(val_clips[0][0, 0, 0, 0]) == 2
    for clip in train_clips + val_clips:
        assert clip.shape == (12, SIDE, SIDE, 3) and clip.dtype == np.uint8
        assert clip[:, 0, 0, 1].tolist() == list(range(12))  # frame t is frame_{t+1}.png: 2 before 10
    again, _ = load_clips(data_cfg(root))
    assert all(np.array_equal(a, b) for a, b in zip(train_clips, again))  # the split is deterministic


def test_vimeo_layout_two_levels_deep_and_limit(tmp_path):
    root = tmp_path / "vimeo" / "sequences"
    for seq in ("00001", "00002"):
        for sub in ("0001", "0002", "0010"):
            folder = root / seq / sub
            folder.mkdir(parents=True)
            for t in range(7):
                Image.fromarray(frame_image(0, t)).save(folder / f"im{t + 1}.png")
    clips = list_clips(tmp_path / "vimeo")
    assert [p.relative_to(root).as_posix() for p in clips] == [
        "00001/0001", "00001/0002", "00001/0010", "00002/0001", "00002/0002", "00002/0010"]
    train_clips, val_clips = load_clips(data_cfg(tmp_path / "vimeo", limit=4))
    assert len(train_clips) + len(val_clips) == 4


def test_the_centre_frame_is_the_target(tmp_path):
    """A planted frame (all 200s) in a clip of noise: the windows centred on it score against it."""
    clip = np.stack([frame_image(0, t) for t in range(10)])
    planted = 6
    clip[planted] = 200
    windows, pairs = val_windows([clip], frames=5, patch_size=16, per_clip=1, steps=6)
    centres = list(range(MARGIN, MARGIN + 6))  # 2..7: the clip's 6 centre frames
    assert windows.shape == (6, 15, 16, 16)
    at = centres.index(planted)
    assert (centre_frame(windows)[at] == 200).all()  # channels 6..8: frame t of t-2..t+2
    assert not (centre_frame(windows)[at - 1] == 200).all()
    assert (windows[at - 1, 9:12] == 200).all()  # the window before has it as its t+1 frame
    validator = Validator(windows, scale=2, grid_images=2, device=torch.device("cpu"), tc_pairs=pairs)
    assert (validator.hr_uint8[at] == 200).all()  # what SR is scored against
    assert validator.lr01.shape == (6, 15, 8, 8)  # G sees the whole LR window

    dataset = TrainWindows([clip], frames=5, patch_size=16, augment=False, length=64, seed=0)
    seen = 0
    for i in range(64):
        k, t, top, left, _, _ = locate(dataset, i)
        item = dataset[i]  # (15, P, P): frames t-2..t+2
        for j, f in enumerate(range(t - 2, t + 3)):
            expected = torch.from_numpy(clip[f, top:top + 16, left:left + 16].transpose(2, 0, 1).copy())
            assert torch.equal(item[3 * j:3 * j + 3], expected)
        seen += t == planted
        if t == planted:
            assert (centre_frame(item[None]) == 200).all()
    assert seen > 0


# ----------------------------------------------------------------------------- windows


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_window_shapes_and_the_same_centre_crops_for_every_window(frames):
    clips = [np.stack([frame_image(k, t) for t in range(9)]) for k in range(2)]
    ds = TrainWindows(clips, frames=frames, patch_size=16, augment=True, length=16, seed=3)
    ref = TrainWindows(clips, frames=1, patch_size=16, augment=True, length=16, seed=3)
    for i in range(16):
        item = ds[i]
        assert item.shape == (3 * frames, 16, 16) and item.dtype == torch.uint8
        assert torch.equal(centre_frame(item[None])[0], ref[i])  # same centre crop (and transform) as window 1
        assert MARGIN <= locate(ds, i)[1] < 9 - MARGIN
    windows, pairs = val_windows(clips, frames, 16, per_clip=2, steps=3)
    assert windows.shape == (2 * 2 * 3, 3 * frames, 16, 16)
    # step-major: items 0..3 are the 4 crops at step 0; each crop pairs step s with s + 1
    assert pairs.shape == (4 * 2, 2)
    assert sorted(pairs.tolist())[:2] == [[0, 4], [1, 5]]


def test_windows_played_backwards_reverse_frame_order():
    clip = np.stack([frame_image(0, t) for t in range(7)])
    ds = TrainWindows([clip], frames=3, patch_size=SIDE, augment=True, length=64, seed=0)
    directions = set()
    for i in range(64):
        _, t, _, _, tf, backwards = locate(ds, i)
        if tf != 0:
            continue
        order = [int(v) for v in ds[i][[1, 4, 7], 0, 0]]  # the t channel of each frame's top-left pixel
        assert order == ([t + 1, t, t - 1] if backwards else [t - 1, t, t + 1])
        directions.add(backwards)
    assert directions == {False, True}


# ----------------------------------------------------------------------------- built-in clips


def test_render_is_exact_at_whole_pixel_positions():
    photo = np.random.default_rng(0).integers(0, 256, (60, 70, 3), dtype=np.uint8)
    centres = np.array([[30.5, 25.5], [31.5, 27.5]])  # frame pixel centres land on photo pixel centres
    frames = render_clip(photo, centres, np.ones(2), side=16, supersample=1)
    assert np.array_equal(frames[0], photo[18:34, 23:39])
    assert np.array_equal(frames[1], photo[20:36, 24:40])


def test_builtin_clips_move_by_sub_pixel_amounts():
    registration = pytest.importorskip("skimage.registration")
    from trainables.data import load_images

    photos, _ = load_images(DataConfig(source="builtin", limit=2, val_images=1, patch_size=synthetic_video.min_photo_side()))
    fractional = []
    for k, photo in enumerate(photos):
        clip, centres = photo_clip(photo, np.random.default_rng([synthetic_video.MOTION_SEED, 0, k, 0]))
        assert clip.shape == (synthetic_video.BUILTIN_LENGTH, synthetic_video.BUILTIN_SIDE, synthetic_video.BUILTIN_SIDE, 3)
        for t in range(0, synthetic_video.BUILTIN_LENGTH - 1, 3):
            a, b = clip[t].astype(np.float64), clip[t + 1].astype(np.float64)
            assert np.abs(a - b).mean() > 1.0  # neighbouring frames differ
            shift, _, _ = registration.phase_cross_correlation(a.mean(-1), b.mean(-1), upsample_factor=20)
            shift = shift[::-1]  # (x, y) in frame pixels
            assert 0.3 < np.hypot(*shift) < 3.0  # by less than a few pixels
            # and by the camera's motion, scaled from photo to frame pixels (zoom ~0.5-0.6)
            moved = np.hypot(*(centres[t + 1] - centres[t]))
            assert 0.45 * moved < np.hypot(*shift) < 0.65 * moved
            fractional.append(np.abs(shift - np.round(shift)).max())
    assert max(fractional) > 0.2  # not whole-pixel shifts: sub-pixel information


def test_builtin_source_splits_by_photo_and_ignores_the_seed():
    cfg = DataConfig(source="video_builtin", limit=1, val_images=2, patch_size=32)
    train_clips, val_clips = load_clips(cfg)
    assert len(train_clips) == synthetic_video.BUILTIN_CLIPS_PER_PHOTO and len(val_clips) == 2
    again, _ = load_clips(cfg)
    assert all(np.array_equal(a, b) for a, b in zip(train_clips, again))


# ----------------------------------------------------------------------------- metric


def test_temporal_consistency_by_hand():
    hr = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    hr[1] = 120  # HR brightens by 20 from frame 0 to frame 1
    pairs = torch.tensor([[0, 1]])
    assert temporal_consistency(hr, hr, pairs, scale=2).item() == 0.0  # HR itself
    steady = hr + 5  # an error that stays the same from frame to frame does not count
    assert temporal_consistency(steady, hr, pairs, scale=2).item() == pytest.approx(0.0)
    flicker = hr.clone()
    flicker[1] += 10  # SR brightens by 30 where HR brightens by 20
    # gray RGB change of 10 is a Y change of 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255
    assert temporal_consistency(flicker, hr, pairs, scale=2).item() == pytest.approx(10 * 219 / 255)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("video"), [8, 8, 8])


@pytest.mark.parametrize("frames", [1, 3, 5])
@pytest.mark.parametrize("temporal_input", ["frames", "diffs"])
def test_every_window_and_input_trains_a_step(clip_root, tmp_path, frames, temporal_input):
    cfg = load_config(overrides={
        "data.source": "video_folder", "data.path": str(clip_root), "data.frames": frames,
        "model.temporal_input": temporal_input, "data.patch_size": 16, "data.val_images": 1,
        "data.val_patches_per_image": 1, "data.val_frames": 4, "data.grid_images": 2,
        "model.g_channels": 4, "model.g_blocks": 1, "model.d_channels": 4, "model.d_dense": 8,
        "schedule.pretrain_epochs": 0, "schedule.gan_epochs": 1, "schedule.patches_per_epoch": 2,
        "schedule.batch_size": 2, "runtime.threads": 1,
    })
    final = train(cfg, out_dir=tmp_path)
    assert final["status"] == "completed" and final["g_steps"] == 1 and final["d_steps"] == 2
    for key in ("val_psnr", "val_ssim", "val_tc", "bicubic_psnr", "bicubic_tc", "loss_d"):
        assert np.isfinite(final[key]), key
    # the bicubic reference of these clips' validation frames (measured once, the same for every window),
    # and one G step barely moves SR off its global bicubic skip: SR flickers as bicubic does
    assert final["bicubic_tc"] == pytest.approx(43.3088, abs=1e-3)
    assert final["bicubic_psnr"] == pytest.approx(16.7007, abs=1e-3)
    assert final["val_tc"] == pytest.approx(final["bicubic_tc"], abs=0.05)


def test_image_runs_report_no_tc(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(frame_image(9, i)).save(folder / f"{i}.png")
    cfg = load_config(overrides={
        "data.source": "folder", "data.path": str(folder), "data.patch_size": 16, "data.val_images": 1,
        "data.val_patches_per_image": 1, "model.g_channels": 4, "model.g_blocks": 1, "model.d_channels": 4,
        "model.d_dense": 8, "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 0,
        "schedule.patches_per_epoch": 2, "schedule.batch_size": 2})
    final = train(cfg, out_dir=tmp_path / "run")
    assert "val_psnr" in final and "val_tc" not in final and "bicubic_tc" not in final


# ----------------------------------------------------------------------------- errors


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"data.path .*nowhere: no such folder$"):
        load_clips(data_cfg(tmp_path / "nowhere"))


def test_clip_shorter_than_the_window_is_one_line(tmp_path):
    root = write_clips(tmp_path / "clips", [8, 3, 8, 8])  # clip_1 (training) has 3 frames, window 5
    with pytest.raises(UserError, match=r"clip_1: clip has 3 frame\(s\), fewer than 5") as err:
        load_clips(data_cfg(root))
    assert "\n" not in str(err.value)
    root = write_clips(tmp_path / "short_val", [8, 8, 5, 8])  # clip_2 validates: needs 2 centre frames
    with pytest.raises(UserError, match=r"clip_2: clip has 5 frame\(s\), fewer than 6 \(a validation clip"):
        load_clips(data_cfg(root))


def test_corrupt_frame_is_one_line(tmp_path):
    root = write_clips(tmp_path / "clips", [8, 8])
    (root / "clip_1" / "frame_4.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(UserError, match=r"clip_1/frame_4.png: not a readable image") as err:
        load_clips(data_cfg(root))
    assert "\n" not in str(err.value)


def test_other_folder_errors(tmp_path):
    root = write_clips(tmp_path / "one", [8])
    with pytest.raises(UserError, match=r"found 1 clip\(s\); need at least 2"):
        load_clips(data_cfg(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no clips found"):
        load_clips(data_cfg(tmp_path / "empty"))
    root = write_clips(tmp_path / "sizes", [8, 8])
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(root / "clip_0" / "frame_9.png")
    with pytest.raises(UserError, match="frames of different sizes in one clip"):
        load_clips(data_cfg(root))


def test_video_file_without_av_names_the_package(tmp_path, monkeypatch):
    write_clips(tmp_path / "clips", [8])
    (tmp_path / "clips" / "movie.mp4").write_bytes(b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError, installed or not
    with pytest.raises(UserError, match=r"movie.mp4: reading video files needs the optional package 'av' "
                                        r"\(pip install av\)") as err:
        load_clips(data_cfg(tmp_path / "clips"))
    assert "\n" not in str(err.value)


def test_video_files_decode_through_av(tmp_path, monkeypatch):
    """The decoder glue against a stand-in for PyAV (the real package is optional)."""
    root = tmp_path / "movies"
    root.mkdir()
    for name in ("b.mkv", "a.mp4", "c.avi"):
        (root / name).write_bytes(b"\x00")

    class Frame:
        def __init__(self, arr):
            self.arr = arr

        def to_ndarray(self, format):
            assert format == "rgb24"
            return self.arr

    class Container:
        def __init__(self, path):
            self.n = {"a.mp4": 6, "b.mkv": 7, "c.avi": 8}[Path(path).name]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def decode(self, video):
            assert video == 0
            return (Frame(frame_image(self.n, t)) for t in range(self.n))

    monkeypatch.setitem(sys.modules, "av", types.SimpleNamespace(open=Container))
    train_clips, val_clips = load_clips(data_cfg(root))
    # a.mp4, b.mkv, c.avi in name order; val_indices(3, 1) == [1]: b.mkv validates
    assert [c.shape[0] for c in train_clips] == [6, 8] and val_clips[0].shape[0] == 7
    assert val_clips[0][:, 0, 0, 1].tolist() == list(range(7))


def test_config_rejects_impossible_video_settings():
    with pytest.raises(ConfigError, match=r"^data.frames: got 3 with data.source 'builtin'; .*video source"):
        load_config(overrides={"data.frames": 3})
    with pytest.raises(ConfigError, match=r"^data.frames: got 4, expected 1, 3 or 5"):
        load_config(overrides={"data.source": "video_builtin", "data.frames": 4})
    with pytest.raises(ConfigError, match=r"^model.temporal_input: got 'flow'"):
        load_config(overrides={"model.temporal_input": "flow"})
    with pytest.raises(ConfigError, match=r"^data.path: source 'video_folder' needs a path"):
        load_config(overrides={"data.source": "video_folder"})
    with pytest.raises(ConfigError, match=r"^data.val_frames: got 1"):
        load_config(overrides={"data.source": "video_builtin", "data.val_frames": 1})
    with pytest.raises(ConfigError, match=r"^runtime.channels_last: not supported with data.frames > 1"):
        load_config(overrides={"data.source": "video_builtin", "data.frames": 3, "runtime.channels_last": True})
    assert load_config(overrides={"data.source": "video_builtin", "data.frames": 5}).data.frames == 5
