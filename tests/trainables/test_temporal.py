"""The temporal front end: shapes, diffs, window 1 is the single-image generator, the skip upsamples the centre frame."""

import pytest
import torch
import torch.nn.functional as F

from trainables.config import load_config
from trainables.degrade import bicubic_up
from trainables.models import Generator, build_generator
from trainables.temporal import TemporalHead, as_diffs

VIDEO = {"data.source": "video_builtin", "model.g_channels": 8, "model.g_blocks": 1}


def test_as_diffs_subtracts_the_centre_from_the_neighbours_only():
    x = torch.rand(2, 5, 3, 4, 4)
    d = as_diffs(x)
    torch.testing.assert_close(d[:, 2], x[:, 2])  # the centre frame stays as is
    for j in (0, 1, 3, 4):
        torch.testing.assert_close(d[:, j], x[:, j] - x[:, 2])


@pytest.mark.parametrize("frames", [3, 5])
@pytest.mark.parametrize("temporal_input", ["frames", "diffs"])
def test_head_shapes_and_time_reach(frames, temporal_input):
    torch.manual_seed(0)
    head = TemporalHead(frames, channels=6, temporal_input=temporal_input)
    x = torch.rand(2, 3 * frames, 10, 12) * 2 - 1
    out = head(x)
    assert out.shape == (2, 6, 10, 12)  # T collapsed, h x w kept
    for j in range(frames):  # every frame of the window reaches the features
        y = x.clone()
        y[:, 3 * j : 3 * j + 3] += 0.5
        assert not torch.allclose(head(y), out)


def test_diffs_head_is_the_frames_head_on_differenced_input():
    torch.manual_seed(0)
    frames_head = TemporalHead(5, 4, "frames")
    diffs_head = TemporalHead(5, 4, "diffs")
    diffs_head.load_state_dict(frames_head.state_dict())
    x = torch.rand(1, 15, 8, 8)
    differenced = as_diffs(x.reshape(1, 5, 3, 8, 8)).reshape(1, 15, 8, 8)
    torch.testing.assert_close(diffs_head(x), frames_head(differenced))


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match="frames"):
        TemporalHead(4, 8)
    with pytest.raises(ValueError, match="temporal_input"):
        TemporalHead(3, 8, "optical_flow")
    with pytest.raises(ValueError, match="3 frames"):
        TemporalHead(3, 8)(torch.rand(1, 15, 8, 8))


@pytest.mark.parametrize("temporal_input", ["frames", "diffs"])
def test_window_1_is_exactly_the_single_image_generator(temporal_input):
    image_cfg = load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1})
    video_cfg = load_config(overrides={**VIDEO, "data.frames": 1, "model.temporal_input": temporal_input})
    torch.manual_seed(0)
    image_g = build_generator(image_cfg)
    torch.manual_seed(0)
    video_g = build_generator(video_cfg)
    assert type(video_g) is type(image_g) is Generator
    assert repr(video_g) == repr(image_g)
    image_state, video_state = image_g.state_dict(), video_g.state_dict()
    assert list(video_state) == list(image_state)
    for key in image_state:
        assert torch.equal(video_state[key], image_state[key]), key
    lr = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(video_g.eval()(lr), image_g.eval()(lr))


@pytest.mark.parametrize("frames", [3, 5])
@pytest.mark.parametrize("temporal_input", ["frames", "diffs"])
def test_video_generator_shapes_and_starts_at_bicubic_of_the_centre_frame(frames, temporal_input):
    cfg = load_config(overrides={**VIDEO, "data.frames": frames, "model.temporal_input": temporal_input})
    torch.manual_seed(0)
    g = build_generator(cfg).eval()
    assert isinstance(g.head, TemporalHead)
    lr = torch.rand(2, 3 * frames, 8, 8)
    with torch.no_grad():
        sr = g(lr)
    assert sr.shape == (2, 3, 16, 16)
    k = frames // 2
    centre = lr[:, 3 * k : 3 * k + 3]
    expected = (bicubic_up(centre, 2) * 2 - 1).clamp(-1, 1)  # the baseline row's kernel (a = -0.5)
    torch.testing.assert_close(sr, expected)  # zero-initialised last conv: SR = bicubic(centre frame)


def test_video_generator_trains_its_head():
    cfg = load_config(overrides={**VIDEO, "data.frames": 3})
    torch.manual_seed(0)
    g = build_generator(cfg)
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    lr, hr = torch.rand(2, 9, 8, 8), torch.rand(2, 3, 16, 16) * 2 - 1
    for _ in range(2):  # the first step moves the zero-initialised last conv; then gradients reach the head
        opt.zero_grad()
        F.mse_loss(g(lr), hr).backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.head.parameters())
