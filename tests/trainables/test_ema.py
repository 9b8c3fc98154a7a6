"""Generator EMA: the average equals a hand-computed one, buffers are copied, and the trainer
validates and saves the average while resuming from the live weights."""

import torch
from torch import nn

from trainables import checkpoint
from trainables.ema import GeneratorEMA
from trainables.validation import Validator
from trainables.train import train

from tests.trainables.test_schedules import tiny


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_ema_equals_a_hand_computed_average_and_copies_buffers():
    model = tiny_model()
    ema = GeneratorEMA(model, decay=0.2)
    w0 = model[0].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    lives = []
    for step in range(3):
        x = torch.tensor([[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]]) * (step + 1)
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
        ema.update(model)
        lives.append(model[0].weight.detach().clone())
    # d_n = min(0.2, (1 + n) / (10 + n)): n = 1 -> 2/11; n = 2, 3 -> 0.2 (3/12 and 4/13 exceed it)
    d1, d2, d3 = 2 / 11, 0.2, 0.2
    want = ((w0 * d1 + lives[0] * (1 - d1)) * d2 + lives[1] * (1 - d2)) * d3 + lives[2] * (1 - d3)
    torch.testing.assert_close(ema.model[0].weight, want, rtol=0, atol=1e-7)
    assert ema.updates == 3
    # BatchNorm running statistics are the live model's, not averaged
    torch.testing.assert_close(ema.model[1].running_mean, model[1].running_mean, rtol=0, atol=0)
    assert int(ema.model[1].num_batches_tracked) == 3
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_state_round_trips_with_its_update_count():
    model = tiny_model()
    ema = GeneratorEMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    other = GeneratorEMA(tiny_model(), decay=0.5)
    other.load_state_dict(ema.state_dict(), ema.updates)
    assert other.updates == 1 and other.current_decay() == ema.current_decay() == 0.25
    torch.testing.assert_close(other.model[0].weight, ema.model[0].weight)


def test_trainer_validates_and_saves_the_average(photo_folder, tmp_path):  # noqa: F811
    cfg = tiny(photo_folder, **{"optim.ema_decay": 0.5, "schedule.pretrain_epochs": 2, "schedule.gan_epochs": 0})
    final = train(cfg, out_dir=tmp_path)
    _, state = checkpoint.load(tmp_path / "checkpoints" / "epoch_0002")
    assert state["ema_updates"] == final["g_steps"] == 4
    assert set(state["generator"]) == set(state["generator_live"])
    differs = [k for k in state["generator"] if not torch.equal(state["generator"][k], state["generator_live"][k])]
    assert differs  # the average is not the live model
    # the reported val_psnr is the average's score
    from trainables.data import load_images, val_patches
    from trainables.models import build_generator

    _, val_images = load_images(cfg.data)
    validator = Validator(val_patches(val_images, 32, 2), cfg.scale, 1, torch.device("cpu"))
    scores = {}
    for name in ("generator", "generator_live"):
        g = build_generator(cfg)
        g.load_state_dict(state[name])
        scores[name] = validator.evaluate(g)[0]["val_psnr"]
    assert scores["generator"] == final["val_psnr"] != scores["generator_live"]
