"""Fourier-space parts: the windowed-FFT content loss, a spectral discriminator and the paper's spectral generator.

Three ideas, all on the 2D FFT of each colour channel (torch.fft, differentiable):

- `fourier_loss`: SR vs HR compared on the amplitude and/or phase of the Hann-windowed
  spectrum (Fuoli, Van Gool and Timofte, ICCV 2021).
- `FourierDiscriminator` / `DualDiscriminator`: D sees the windowed spectrum (log
  amplitude and the phase as cos/sin), alone or next to the usual spatial D.
- `SpectralGenerator`: the paper's preliminary experiment, a generator that maps the
  LR's spectrum representation to the HR's one (`fft_real`), and its two proposed fixes
  (`fft_logamp`, `fft_complex`).

Normalisation (so one `loss.fourier_weight` means the same at every patch size): the
FFT is orthonormal (`norm="ortho"`, Parseval: the mean of |X|^2 over frequencies equals
the mean of |x|^2 over pixels), and every term is a mean over (B, C, H, W) frequencies.
A broadband error (white noise of std s on a textured patch) then costs the same at 32,
64 or 128 pixels (about 0.21 s in each term, within 4%; tested); a single sinusoid's
error, which fills a few of the N^2 bins, shrinks as 1/N.
Images are in the model's [-1, 1] range and multiplied by a periodic 2D Hann window
(outer product of two 1D windows) before the loss's and D's FFT, so the patch border
does not leak into every frequency. The generator's transforms use no window (a window
with zeros is not invertible).

Flat patches: the phase of a near-zero coefficient is noise and `angle()` has an
infinite gradient at 0. Phases here are therefore never computed with `angle()`; they
are unit phasors guarded by `EPS`: u = X / sqrt(|X|^2 + EPS^2), which is exp(i*phase)
where |X| >> EPS, shrinks to 0 where |X| << EPS, and has a gradient bounded by 1 / EPS
everywhere. The loss's phase term is also weighted by HR's amplitude, so frequencies HR
leaves empty drop out of it. Amplitudes are sqrt(|X|^2 + EPS^2) for the same reason (at
most EPS above |X|).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from trainables.degrade import bicubic_up

EPS = 1e-3  # amplitude floor of the phasor and amplitude guards (images in [-1, 1], orthonormal FFT)
FOURIER_TERMS = ("amplitude", "phase", "both")
# generator domains -> channels per colour channel of their representation
G_DOMAINS = {"spatial": 1, "fft_real": 1, "fft_logamp": 3, "fft_complex": 2}
SPECTRAL_CHANNELS = 9  # D's input per image: log amplitude, cos and sin of the phase, x 3 colours


# ----------------------------------------------------------------------------- spectra


def hann2d(h: int, w: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """(h, w) periodic Hann window, the outer product of two 1D ones (peak 1, zero on row/column 0)."""
    wy = torch.hann_window(h, periodic=True, device=device, dtype=dtype)
    wx = torch.hann_window(w, periodic=True, device=device, dtype=dtype)
    return wy[:, None] * wx[None, :]


def windowed_spectrum(x: Tensor) -> Tensor:
    """(B, C, H, W) real -> (B, C, H, W) complex: orthonormal 2D FFT of the Hann-windowed channels.

    Always in float32 or wider (torch.fft has no bf16), so it is safe under autocast.
    """
    x = _fft_dtype(x)
    return torch.fft.fft2(x * hann2d(x.shape[-2], x.shape[-1], x.device, x.dtype), norm="ortho")


def _fft_dtype(x: Tensor) -> Tensor:
    """float64 stays (exact round-trip tests); anything else (bf16 under autocast, fp16) becomes float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def amplitude(z: Tensor, eps: float = EPS) -> Tensor:
    """|z| floored smoothly at eps: sqrt(|z|^2 + eps^2), with a finite gradient at z = 0."""
    return torch.sqrt(z.real.square() + z.imag.square() + eps * eps)


def phasor(z: Tensor, eps: float = EPS) -> Tensor:
    """exp(i * phase(z)) where |z| >> eps, shrinking to 0 where |z| << eps; complex, same shape."""
    return z / amplitude(z, eps)


def log_amplitude_spectrum(x: Tensor) -> Tensor:
    """(B, C, H, W) images in [-1, 1] -> (B, C, H, W) log10 amplitude of the windowed spectrum, DC centred.

    The paper's Figure 1 view (used by the sample grid's spectra rows).
    """
    z = torch.fft.fftshift(windowed_spectrum(x), dim=(-2, -1))
    return torch.log10(amplitude(z))


# ----------------------------------------------------------------------------- loss


def fourier_loss(sr: Tensor, hr: Tensor, terms: str = "both") -> Tensor:
    """Frequency-space content loss between SR and HR, (B, C, H, W) in [-1, 1] -> scalar.

    amplitude: mean over frequencies of |A_sr - A_hr| (L1 of the windowed amplitudes).
    phase: mean over frequencies of A_hr * |u_sr - u_hr| for the guarded unit phasors u,
    i.e. |A_hr * u_sr - X_hr|: the error SR's phase alone would cause at HR's amplitude,
    2 A_hr |sin(dphase / 2)|. Weighting by A_hr puts the term in the amplitude term's
    units (by the triangle inequality the two bound the complex L1 error |X_sr - X_hr|) and
    drops the phases of near-empty frequencies, which are noise: an unweighted phase term
    on photographs had ~5000x the gradient norm of pixel MSE, this one ~65x.
    both: their sum. Zero for identical images; finite gradients on flat patches.
    """
    if terms not in FOURIER_TERMS:
        raise ValueError(f"terms: got {terms!r}, expected one of {', '.join(FOURIER_TERMS)}")
    z_sr, z_hr = windowed_spectrum(sr), windowed_spectrum(hr.detach())
    loss = torch.zeros((), device=sr.device, dtype=z_sr.real.dtype)
    if terms in ("amplitude", "both"):
        loss = loss + (amplitude(z_sr) - amplitude(z_hr)).abs().mean()
    if terms in ("phase", "both"):
        d = phasor(z_sr) - phasor(z_hr)
        loss = loss + (amplitude(z_hr) * d.abs()).mean()  # complex abs: gradient sgn(0) = 0 at d = 0
    return loss


def content_loss(weight: float, terms: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The trainer's Fourier term: `fourier_loss(sr, hr, terms)`, or a constant 0 when `weight` is 0 (no FFT cost).

    The trainer multiplies it by `weight` (loss.fourier_weight) and adds it to G's loss in
    MSE pretraining and in the GAN phase alike: it is a content loss, and leaving it out of
    pretraining would hand the GAN phase a generator that never saw it.
    """
    if weight == 0:
        return lambda sr, hr: torch.zeros((), device=sr.device)
    return lambda sr, hr: fourier_loss(sr, hr, terms)


# ----------------------------------------------------------------------------- discriminators


def spectral_features(x: Tensor) -> Tensor:
    """D's Fourier input: (B, 3, P, P) in [-1, 1] -> (B, 9, P, P), per colour: log amplitude, cos, sin of phase.

    DC is shifted to the centre so a 3x3 conv sees neighbouring frequencies. The phase
    is given as cos/sin (no wrap at +-pi) via the guarded phasor (0, 0 where |X| << EPS).
    """
    z = torch.fft.fftshift(windowed_spectrum(x), dim=(-2, -1))  # (B, 3, P, P) complex
    u = phasor(z)
    return torch.cat([torch.log(amplitude(z)), u.real, u.imag], dim=1)


def widen_input(module: nn.Module, in_channels: int) -> nn.Module:
    """Replace the first Conv2d of `module` by one taking `in_channels` (same kernel, stride, padding, bias)."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                conv = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                                 padding=child.padding, bias=child.bias is not None)
                setattr(parent, name, conv)
                return module
    raise ValueError("widen_input: the module has no Conv2d")


class FourierDiscriminator(nn.Module):
    """D on the spectrum: images (B, 3, P, P) -> `spectral_features` (B, 9, P, P) -> `inner` -> scores (B,).

    `inner` is a spatial discriminator (any norm) whose first conv is widened to 9 channels.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = widen_input(inner, SPECTRAL_CHANNELS)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(spectral_features(x))


class DualDiscriminator(nn.Module):
    """One score from a spatial and a Fourier branch: the mean of their raw scores, (B,).

    The mean keeps the score's scale (and so beta's meaning) that of a single D.
    """

    def __init__(self, spatial: nn.Module, fourier: FourierDiscriminator) -> None:
        super().__init__()
        self.spatial, self.fourier = spatial, fourier

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * (self.spatial(x) + self.fourier(x))


# ----------------------------------------------------------------------------- generator transforms


def to_domain(x: Tensor, domain: str) -> Tensor:
    """(B, 3, H, W) images -> (B, 3k, H, W) spectral representation, DC centred (k = G_DOMAINS[domain]).

    fft_real: Re X. fft_complex: [Re X, Im X]. fft_logamp: [log(|X| + EPS), cos, sin of phase]
    (cos, sin = 1, 0 where X = 0). Orthonormal FFT, no window; channel blocks are colour-major
    within each part ([re_r, re_g, re_b, im_r, ...]).
    """
    if domain == "spatial":
        return x
    z = torch.fft.fftshift(torch.fft.fft2(_fft_dtype(x), norm="ortho"), dim=(-2, -1))
    if domain == "fft_real":
        return z.real
    if domain == "fft_complex":
        return torch.cat([z.real, z.imag], dim=1)
    if domain == "fft_logamp":
        a = z.abs()
        nonzero = a > 0
        safe = torch.where(nonzero, a, torch.ones_like(a))
        cos = torch.where(nonzero, z.real / safe, torch.ones_like(a))
        sin = torch.where(nonzero, z.imag / safe, torch.zeros_like(a))
        return torch.cat([torch.log(a + EPS), cos, sin], dim=1)
    raise ValueError(f"domain: got {domain!r}, expected one of {', '.join(G_DOMAINS)}")


def from_domain(t: Tensor, domain: str) -> Tensor:
    """Inverse of `to_domain`: (B, 3k, H, W) -> (B, 3, H, W) real images.

    fft_complex and fft_logamp invert exactly; any array the generator outputs maps to the
    real part of its inverse FFT (the image of the spectrum's Hermitian-symmetric part).
    fft_real is lossy by construction: a real image's Re X is even (Re X[k] = Re X[-k]),
    and the inverse FFT of it is the image's even part (x[n] + x[-n mod N]) / 2, n the 2D
    pixel index mod the patch size; the odd part (x[n] - x[-n]) / 2 lives in Im X, which
    this domain drops. An even image round-trips exactly; others come back symmetrised.
    fft_logamp: amplitude exp(l) - EPS, phase the direction of (cos, sin) (normalised
    with a 1e-12 guard, so the network's output need not be a unit vector).
    """
    if domain == "spatial":
        return t
    c = t.shape[1] // G_DOMAINS[domain]
    if domain == "fft_real":
        z = torch.complex(t, torch.zeros_like(t))
    elif domain == "fft_complex":
        z = torch.complex(t[:, :c], t[:, c:])
    elif domain == "fft_logamp":
        amp = torch.exp(t[:, :c]) - EPS
        cos, sin = t[:, c : 2 * c], t[:, 2 * c :]
        norm = torch.sqrt(cos.square() + sin.square() + 1e-24)
        z = torch.complex(amp * cos / norm, amp * sin / norm)
    else:
        raise ValueError(f"domain: got {domain!r}, expected one of {', '.join(G_DOMAINS)}")
    return torch.fft.ifft2(torch.fft.ifftshift(z, dim=(-2, -1)), norm="ortho").real


class SpectralGenerator(nn.Module):
    """The paper's Fourier-domain generator: LR (B, 3, h, w) in [0, 1] -> SR (B, 3, h*s, w*s) in [-1, 1].

    to_domain(LR in [-1, 1]) (B, 3k, h, w) -> `net`'s head, residual body and upsamplers
    (convolutions over the DC-centred spectrum, upsampled x scale like an image) -> a conv9
    to 3k channels -> from_domain -> clamp to [-1, 1]. `net` is a `models.Generator` built
    with in_channels 3k; its RGB tail is replaced here by one to 3k channels, and its
    output stage (tanh / bicubic skip) is not used. global_skip "bicubic" adds the
    representation of the bicubic upsample (the tail starts at zero, so at step 0 SR is
    from_domain(to_domain(bicubic)): bicubic itself, or its even part for fft_real);
    "none" is the raw prediction.
    """

    def __init__(self, domain: str, net: nn.Module, scale: int, global_skip: str) -> None:
        super().__init__()
        if domain not in G_DOMAINS or domain == "spatial":
            raise ValueError(f"domain: got {domain!r}, expected one of fft_real, fft_logamp, fft_complex")
        self.domain, self.scale, self.global_skip = domain, scale, global_skip
        k = 3 * G_DOMAINS[domain]
        old = net.tail
        net.tail = nn.Conv2d(old.in_channels, k, old.kernel_size, padding=old.padding)
        if global_skip == "bicubic":
            nn.init.zeros_(net.tail.weight)
            nn.init.zeros_(net.tail.bias)
        self.net = net

    def forward(self, lr: Tensor) -> Tensor:
        n = self.net
        t = to_domain(lr * 2 - 1, self.domain)  # (B, 3k, h, w)
        head = n.head(t)  # (B, C, h, w)
        feats = head + n.body_tail(n.body(head))
        out = n.tail(n.upsample(feats)).float()  # (B, 3k, h*s, w*s)
        if self.global_skip == "bicubic":
            base = bicubic_up(lr[:, :3], self.scale)  # (B, 3, h*s, w*s) in [0, 1], as the spatial G's skip
            out = out + to_domain(base * 2 - 1, self.domain)
        return torch.clamp(from_domain(out, self.domain), -1.0, 1.0)
