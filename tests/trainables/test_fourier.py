"""Fourier-space parts: the windowed-FFT loss, the spectral discriminators (with WGAN-GP), the
Fourier-domain generators' transforms, the grid's spectra rows and the trainer with all of them."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.trainables.photos import tiny_config, write_sinusoid_photos
from trainables.config import ConfigError, load_config
from trainables.degrade import bicubic_up
from trainables.fourier import (
    FOURIER_TERMS,
    DualDiscriminator,
    FourierDiscriminator,
    SpectralGenerator,
    fourier_loss,
    from_domain,
    spectral_features,
    to_domain,
)
from trainables.grids import make_grid
from trainables.losses import gradient_penalty
from trainables.models import Discriminator, Generator, build_discriminator, build_generator
from trainables.train import train


def checkerboard(n: int) -> torch.Tensor:
    """(1, 1, n, n) of +-1: all its energy at the Nyquist frequency (n/2, n/2)."""
    i = torch.arange(n)
    return ((-1.0) ** (i[:, None] + i[None, :])).view(1, 1, n, n)


def even_part(x: torch.Tensor) -> torch.Tensor:
    """(x[n] + x[-n mod N]) / 2 over both image axes."""
    return 0.5 * (x + torch.roll(torch.flip(x, (-2, -1)), (1, 1), (-2, -1)))


# ----------------------------------------------------------------------------- loss


@pytest.mark.parametrize("terms", FOURIER_TERMS)
def test_loss_is_zero_for_identical_images(terms):
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert fourier_loss(hr, hr.clone(), terms).item() == 0.0


@pytest.mark.parametrize("terms", FOURIER_TERMS)
def test_loss_grows_with_a_high_pass_perturbation(terms):
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    losses = [fourier_loss(hr + a * checkerboard(32), hr, terms).item() for a in (0.0, 0.01, 0.05, 0.2)]
    assert losses[0] == 0.0
    assert losses[1] < losses[2] < losses[3]


def test_amplitude_term_matches_the_hand_computed_value():
    # flat 0.2 plus a * checkerboard: the windowed checkerboard's orthonormal spectrum is
    # a * N * (1/4 at Nyquist, 1/8 at its 4 edge neighbours, 1/16 at its 4 corners), far
    # from the flat part's DC bins, so the summed |dA| is a * N and its mean over N^2 bins a / N
    n, a = 32, 0.05
    flat = torch.full((1, 3, n, n), 0.2)
    loss = fourier_loss(flat + a * checkerboard(n), flat, "amplitude").item()
    assert loss == pytest.approx(a / n, rel=0.01)  # 0.0015625 (the EPS floor costs < 1%)
    # a single frequency's error fills a few of the N^2 bins: at 64 px it halves (a / N)
    big = torch.full((1, 3, 64, 64), 0.2)
    assert fourier_loss(big + a * checkerboard(64), big, "amplitude").item() == pytest.approx(a / 64, rel=0.01)


def test_a_broadband_error_costs_the_same_at_every_patch_size():
    # orthonormal FFT + mean over frequencies: white noise of std s on a textured HR costs about
    # 0.21 s in each term at every size, so one weight fits 32 to 128 px
    g = torch.Generator().manual_seed(6)
    costs = []
    for n in (32, 64, 128):
        hr = torch.rand(4, 3, n, n, generator=g) * 2 - 1
        sr = hr + 0.05 * torch.randn(4, 3, n, n, generator=g)
        costs.append([fourier_loss(sr, hr, t).item() for t in ("amplitude", "phase")])
    for amp, phase in costs:
        assert amp == pytest.approx(costs[0][0], rel=0.05) and phase == pytest.approx(costs[0][1], rel=0.05)
    assert costs[0] == pytest.approx([0.0109, 0.0108], rel=0.02)


@pytest.mark.parametrize("terms", FOURIER_TERMS)
@pytest.mark.parametrize("target", ["same", "flat", "textured"])
def test_gradients_are_finite_on_flat_patches(terms, target):
    sr = torch.full((2, 3, 16, 16), 0.3, requires_grad=True)
    hr = {"same": torch.full((2, 3, 16, 16), 0.3), "flat": torch.full((2, 3, 16, 16), -0.5),
          "textured": torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1}[target]
    loss = fourier_loss(sr, hr, terms)
    (grad,) = torch.autograd.grad(loss, sr)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    if target == "textured":
        assert grad.abs().max() > 0


# ----------------------------------------------------------------------------- discriminators


def test_spectral_features_shape_and_phase_channels():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    f = spectral_features(x)
    assert f.shape == (2, 9, 32, 32)
    cos, sin = f[:, 3:6], f[:, 6:9]
    assert (cos.square() + sin.square()).max() <= 1 + 1e-5  # unit phasors, shrunk where |X| ~ 0


@pytest.mark.parametrize("domain", ["fourier", "dual"])
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_wgan_gp_penalty_works_through_the_fourier_discriminator(domain, norm):
    torch.manual_seed(0)
    d = FourierDiscriminator(Discriminator(32, 8, 16, norm))
    if domain == "dual":
        d = DualDiscriminator(Discriminator(32, 8, 16, norm), d)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = torch.zeros(4, 3, 32, 32, requires_grad=True)  # a flat fake: the FFT guards matter
    gp = gradient_penalty(d, real, fake)
    gp.backward()
    grads = [p.grad for p in d.parameters() if p.grad is not None]
    assert torch.isfinite(gp) and gp.item() > 0
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0
    assert fake.grad is None  # the penalty trains D only


def test_builders_wrap_the_spatial_discriminator():
    base = {"data.patch_size": 32, "model.d_channels": 4, "model.d_dense": 8}
    spatial = build_discriminator(load_config(overrides=base))
    fourier = build_discriminator(load_config(overrides={**base, "model.d_domain": "fourier"}))
    dual = build_discriminator(load_config(overrides={**base, "model.d_domain": "dual"}))
    assert isinstance(spatial, Discriminator)
    assert isinstance(fourier, FourierDiscriminator) and fourier.inner.features[0].in_channels == 9
    assert isinstance(dual, DualDiscriminator)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    for d in (spatial, fourier, dual):
        assert d(x).shape == (3,)


# ----------------------------------------------------------------------------- generator transforms


@pytest.mark.parametrize("domain", ["fft_complex", "fft_logamp"])
def test_invertible_transforms_round_trip_exactly(domain):
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    x[0, 0] = 0.0  # an all-zero channel: every coefficient 0 (logamp's phase is then set to 0)
    t = to_domain(x, domain)
    assert t.shape == (2, 3 * {"fft_complex": 2, "fft_logamp": 3}[domain], 16, 16)
    assert torch.allclose(from_domain(t, domain), x, atol=1e-12, rtol=0)


def test_fft_real_keeps_exactly_the_even_part():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    back = from_domain(to_domain(x, "fft_real"), "fft_real")
    assert torch.allclose(back, even_part(x), atol=1e-12, rtol=0)
    # an even image round-trips exactly; the odd part is lost (what the paper found insufficient)
    assert torch.allclose(from_domain(to_domain(even_part(x), "fft_real"), "fft_real"), even_part(x), atol=1e-12)
    odd = x - even_part(x)
    assert from_domain(to_domain(odd, "fft_real"), "fft_real").abs().max() < 1e-12


@pytest.mark.parametrize("domain", ["fft_real", "fft_logamp", "fft_complex"])
def test_spectral_generator_starts_as_the_bicubic_upsample(domain):
    torch.manual_seed(0)
    g = SpectralGenerator(domain, Generator(2, 8, 1, "pixel_shuffle", "none", in_channels=3 * {
        "fft_real": 1, "fft_logamp": 3, "fft_complex": 2}[domain]), 2, "bicubic")
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    sr = g(lr)
    base = bicubic_up(lr, 2) * 2 - 1
    expected = even_part(base) if domain == "fft_real" else base
    assert sr.shape == (2, 3, 16, 16)
    assert torch.allclose(sr, expected.clamp(-1, 1), atol=1e-5)


def test_g_domain_config():
    cfg = load_config(overrides={"model.g_domain": "fft_logamp", "model.g_channels": 4, "model.g_blocks": 1})
    g = build_generator(cfg)
    assert isinstance(g, SpectralGenerator) and g.net.tail.out_channels == 9
    assert g(torch.rand(1, 3, 32, 32)).shape == (1, 3, 64, 64)
    with pytest.raises(ConfigError, match="model.g_domain"):
        load_config(overrides={"model.g_domain": "fft_real", "data.source": "video_builtin", "data.frames": 3})
    with pytest.raises(ConfigError, match="loss.fourier_weight"):
        load_config(overrides={"loss.fourier_weight": -0.1})
    with pytest.raises(ConfigError, match="model.d_domain"):
        load_config(overrides={"model.d_domain": "wavelet"})


# ----------------------------------------------------------------------------- grid


def test_grid_spectra_rows():
    sr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    lr = torch.rand(2, 3, 8, 8)
    assert make_grid(sr, sr, lr, hr, 2).size[1] == 4 * (16 + 2)
    grid = make_grid(sr, sr, lr, hr, 2, spectra=True)
    assert grid.size[1] == 6 * (16 + 2)
    # the HR spectrum row spans the full grey scale (its own min..max)
    row = np.asarray(grid)[5 * 18 : 5 * 18 + 16, 56 : 56 + 16]
    assert row.min() == 0 and row.max() == 255


# ----------------------------------------------------------------------------- trainer


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Four 48x48 RGB images of random sinusoids."""
    return write_sinusoid_photos(tmp_path_factory.mktemp("photos"), count=4, side=48, waves=4, seed=0,
                                 max_freq=10)


def tiny(folder, **overrides):
    return tiny_config(folder, width=4, val_images=1, val_patches=1, pretrain_epochs=1, gan_epochs=1,
                       patches_per_epoch=8, batch_size=4, **overrides)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("family", ["bce", "lsgan", "wgan_gp"])
@pytest.mark.parametrize("d_domain", ["spatial", "fourier", "dual"])
def test_every_d_domain_family_scale_trains_both_phases(photo_folder, tmp_path, d_domain, family, scale):
    cfg = tiny(photo_folder, **{"model.d_domain": d_domain, "loss.family": family, "scale": scale,
                                "model.d_norm": "layer" if family == "wgan_gp" else "batch"})
    reports = []
    final = train(cfg, report=lambda m, c: reports.append(m), out_dir=tmp_path)
    assert [m["phase"] for m in reports] == ["pretrain", "gan"] and final["status"] == "completed"
    for key in ("loss_g", "loss_d", "loss_adv", "d_real", "d_fake", "val_psnr", "val_hf"):
        assert np.isfinite(reports[1][key]), key
    if family == "wgan_gp":
        assert reports[1]["loss_gp"] > 0


@pytest.mark.parametrize("g_domain", ["fft_real", "fft_logamp", "fft_complex"])
def test_every_g_domain_trains_both_phases(photo_folder, tmp_path, g_domain):
    cfg = tiny(photo_folder, **{"model.g_domain": g_domain, "model.d_domain": "dual"})
    final = train(cfg, out_dir=tmp_path)
    assert final["status"] == "completed" and np.isfinite(final["val_psnr"])


def test_fourier_loss_in_both_phases_and_spectra_grid(photo_folder, tmp_path):
    cfg = tiny(photo_folder, **{"loss.fourier_weight": 0.5, "loss.fourier_terms": "both",
                                "data.grid_spectra": True})
    reports = []
    train(cfg, report=lambda m, c: reports.append(m), out_dir=tmp_path)
    for m in reports:  # pretraining and GAN: loss_g holds 0.5 * loss_fourier on top of the pixel term
        assert m["loss_fourier"] > 0
        assert m["loss_g"] >= m["loss_pixel"] + 0.5 * m["loss_fourier"] - 1e-6
    assert Image.open(tmp_path / "grids" / "epoch_0002.png").size[1] == 6 * (32 + 2)
    off = tiny(photo_folder)
    assert train(off, out_dir=tmp_path / "off")["loss_fourier"] == 0.0


def test_fourier_parts_run_under_bf16_autocast(photo_folder, tmp_path):
    # torch.fft has no bf16: the transforms cast to float32 inside autocast regions
    cfg = tiny(photo_folder, **{"runtime.precision": "bf16", "model.d_domain": "dual",
                                "model.g_domain": "fft_complex", "loss.fourier_weight": 0.1})
    final = train(cfg, out_dir=tmp_path)
    assert final["status"] == "completed" and np.isfinite(final["loss_fourier"]) and final["loss_fourier"] > 0
