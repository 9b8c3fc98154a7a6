"""The one typed schema of a trial's configuration: every default lives here.

Conventions (also in the README's vocabulary): `lr`, `hr`, `sr` are images, never
learning rates (those are `lr_g`, `lr_d`). LR images are in [0, 1]; HR and SR images,
as the generator sees and produces them, are in [-1, 1] (the paper's normalisation).
`scale` is the upscaling factor (2 or 4); `patch_size` is the HR patch side.

Loading is strict: unknown keys, wrong types and impossible values fail before
anything starts, with a one-line message naming the field (`ConfigError`).
YAML reading and dotted overrides (`--set`, Tune's sampled values) are in `trainables.yamlio`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from trainables.errors import ConfigError
from trainables.yamlio import apply_overrides, build_dataclass, deep_copy, flatten, merge, read_yaml

DataSource = Literal["builtin", "folder", "stl10", "celeba", "imagenet64", "div2k", "video_builtin", "video_folder"]
DOWNLOAD_SOURCES = ("stl10", "div2k")  # sources whose archives data.download can fetch
VIDEO_SOURCES = ("video_builtin", "video_folder")  # clips of ordered frames (trainables.video)
Upsampler = Literal["pixel_shuffle", "resize_conv"]
LossFamily = Literal["bce", "lsgan", "wgan_gp"]
DNorm = Literal["batch", "layer", "none"]
DEFAULT_BENCHMARKS = ["Set5", "Set14", "BSD100", "Urban100"]


@dataclass
class DataConfig:
    """Where HR patches come from and how they are cut."""

    source: DataSource = "builtin"
    path: str | None = None  # folder / file for every source but `builtin`
    limit: int | None = None  # use only the first N images (the paper used 9000)
    patch_size: int = 64  # HR patch side in pixels; LR side is patch_size // scale
    crop: Literal["random", "center"] = "random"  # training crops; validation is always centre
    augment: bool = True  # random flips and 90-degree rotations of training patches
    val_images: int = 16  # validation images held out (deterministic, by image, not patch); clips for video
    val_patches_per_image: int = 8  # crops on a fixed grid over each validation image
    grid_images: int = 4  # validation patches shown in the per-epoch sample grid
    grid_spectra: bool = False  # add rows of log-amplitude spectra (SR, HR) to the grid (trainables.fourier)
    num_workers: int = 0  # DataLoader worker processes (0: one gather per batch in the training process)
    # training images/clips live on the training device when they take at most this many MiB
    # (0: always host memory, pinned, with asynchronous copies); CPU training ignores it
    device_cache_mb: float = 4096.0
    download: bool = False  # stl10, div2k: fetch the archive (checksum-checked) if `path` lacks it
    # div2k: keep decoded images as .npy files (data.path/.srstudy-cache/, keyed by file, size and
    # mtime) so the next trial maps them instead of decoding every PNG again; video_builtin: keep the
    # rendered clips in $SRSTUDY_CACHE_DIR (default ~/.cache/srstudy) for the node's later trials
    cache_decoded: bool = True
    stl10_split: Literal["train", "test", "unlabeled", "train+unlabeled"] = "unlabeled"
    # video: G sees frames t-k..t+k (1, 3 or 5) and super-resolves the centre frame t; > 1 needs a
    # video source, and a video source with 1 is the single-frame baseline on the same frames
    frames: int = 1
    val_frames: int = 4  # video: consecutive centre frames scored per validation crop (val_tc pairs them)


@dataclass
class ModelConfig:
    """Generator (SRResNet style) and discriminator (SRGAN style) sizes."""

    g_channels: int = 32  # paper: 64
    g_blocks: int = 4  # residual blocks; paper: 16
    # the generator's BatchNorms (residual blocks and body tail): "batch" (SRGAN) or "none" (EDSR:
    # the convs get biases; no batch statistics, so training and evaluation compute the same function)
    g_norm: Literal["batch", "none"] = "batch"
    upsampler: Upsampler = "pixel_shuffle"
    # "bicubic": SR = bicubic(LR) + G(LR), a global residual that makes short CPU runs
    # beat bicubic; "none": the paper's plain tanh output.
    global_skip: Literal["none", "bicubic"] = "bicubic"
    # data.frames > 1: the 3D-conv front end sees the neighbours as frames, or as differences from
    # the centre frame ("diffs"; the centre frame itself stays as is). No effect at data.frames 1.
    temporal_input: Literal["frames", "diffs"] = "frames"
    d_channels: int = 16  # first conv width; doubles every two blocks; paper: 64
    d_dense: int = 256  # hidden units of the dense head; paper: 1024
    # discriminator normalisation after each strided conv, whatever the loss family: "batch" (SRGAN),
    # "layer" (GroupNorm with one group: per sample over C, H, W) or "none". wgan_gp refuses "batch"
    # (validate()): its gradient penalty is per sample and BatchNorm couples a batch's samples; specs
    # that compare loss families set "layer" for all of them
    d_norm: DNorm = "batch"
    # what D sees (trainables.fourier): the image, the Hann-windowed spectrum (log amplitude, cos/sin
    # of the phase), or both branches averaged into one score
    d_domain: Literal["spatial", "fourier", "dual"] = "spatial"
    # what G works on: the image, or (the paper's preliminary experiment) the FFT's real part (lossy:
    # gives the image's even part), or its fixes: log amplitude + phase, real + imaginary channels
    g_domain: Literal["spatial", "fft_real", "fft_logamp", "fft_complex"] = "spatial"


@dataclass
class LossConfig:
    """Generator loss = pixel_weight * pixel (loss.pixel) + vgg_weight * VGG54 + beta * adversarial."""

    family: LossFamily = "lsgan"
    beta: float = 1e-3  # adversarial weight: 1e-3 in SRGAN, 1e-2 best in the paper
    pixel_weight: float = 1.0
    vgg_weight: float = 0.0  # > 0 needs torchvision's VGG-19 ImageNet weights locally
    gp_weight: float = 10.0  # WGAN-GP gradient-penalty weight (wgan_gp only)
    # the pixel term of pretraining and of the GAN phase's content loss: mean squared error, mean
    # absolute error (EDSR and most later SR work), or Charbonnier sqrt(d^2 + eps^2), a smooth L1
    pixel: Literal["mse", "l1", "charbonnier"] = "mse"
    charbonnier_eps: float = 1e-3  # in the [-1, 1] units of HR and SR
    # frequency-space content loss (trainables.fourier.fourier_loss), added to G's loss in pretraining
    # and in the GAN phase: L1 of windowed-FFT amplitudes and/or the HR-amplitude-weighted phase error
    fourier_weight: float = 0.0
    fourier_terms: Literal["amplitude", "phase", "both"] = "both"


@dataclass
class OptimConfig:
    """Adam for G and for D, with separate rates and betas."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_pretrain: float = 1e-3  # G's rate during MSE pretraining
    beta1_pretrain: float = 0.9  # Adam betas of G's MSE pretraining
    beta2_pretrain: float = 0.999
    beta1_g: float = 0.9  # paper: 0.5 for bce, 0.9 for lsgan
    beta1_d: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = None  # max grad norm for G and D; None disables
    # Learning-rate schedule, run by each phase over its own epochs (pretraining scales lr_pretrain,
    # the GAN phase lr_g and lr_d alike). The rate of epoch e is a formula of e alone
    # (trainables/schedules.py), so a resumed run continues the schedule exactly.
    schedule: Literal["constant", "step", "cosine"] = "constant"
    warmup_epochs: int = 0  # every schedule: epoch e < warmup_epochs runs at base * (e + 1) / (warmup_epochs + 1)
    step_epochs: int = 10  # step: multiply the rate by gamma every step_epochs epochs of the phase
    gamma: float = 0.5  # step: the factor
    min_lr_ratio: float = 0.0  # cosine: the floor the rate decays towards, as a fraction of the base rate
    # exponential moving average of G's weights after every G step (0 = off); when on, the average
    # is what validation, grids, best-epoch choice and the checkpoint's `generator` use
    ema_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """Phase 1 pretrains G on pixel MSE; phase 2 alternates D and G steps."""

    pretrain_epochs: int = 4
    gan_epochs: int = 2
    patches_per_epoch: int = 2560  # HR patches drawn per epoch (all workers together)
    batch_size: int = 16  # per worker
    d_steps_per_g: int = 2  # the paper's best ratio


@dataclass
class RuntimeConfig:
    """Where and how the tensors run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast (GPUs)
    # torch.compile G and D: "none" (eager), or a torch.compile mode; "reduce-overhead" captures
    # CUDA graphs. The first steps of a run pay the compile time (tens of seconds).
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
    channels_last: bool = False
    threads: int | None = None  # torch intra-op threads; None keeps torch's choice
    # testing aid: make the losses NaN from this global G step on (checks divergence handling)
    debug_nan_step: int | None = None


@dataclass
class EvalConfig:
    """Test-set scoring of the selected generator (the best validation epoch) at the end of a trial."""

    # benchmark folders by the SR protocol: names under $SR_BENCHMARKS (each used where its folder
    # exists) or absolute paths to any folder of images; [] scores nothing
    benchmarks: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    # HR pixels scored per set; a larger set is scored on an evenly spaced subset of its images (name
    # order), recorded as test_<set>_images of test_<set>_images_total. null scores every image
    max_pixels: int | None = 4_000_000


@dataclass
class TrialConfig:
    """Everything one training run can set."""

    seed: int = 0
    scale: Literal[2, 4] = 2
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Flat dotted keys (`loss.beta`) to values, as params for tracking."""
        return flatten(self.to_dict())


# ----------------------------------------------------------------------------- values


def _check(ok: bool, where: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {msg}")


def validate(cfg: TrialConfig) -> TrialConfig:
    """Reject impossible combinations; return the config unchanged when it is sound."""
    d, m, l, o, s, r = cfg.data, cfg.model, cfg.loss, cfg.optim, cfg.schedule, cfg.runtime
    _check(0 <= cfg.seed < 2**63, "seed", f"got {cfg.seed}, expected 0 <= seed < 2**63 (a 64-bit seed)")
    _check(d.patch_size >= 16 and d.patch_size % 16 == 0, "data.patch_size",
           f"got {d.patch_size}, expected a multiple of 16 (the discriminator halves it four times)")
    _check(d.patch_size % cfg.scale == 0, "data.patch_size",
           f"got {d.patch_size}, must be divisible by scale {cfg.scale}")
    _check(d.source in ("builtin", "video_builtin") or d.path is not None, "data.path",
           f"source {d.source!r} needs a path (a folder or file)")
    _check(d.source not in ("builtin", "video_builtin") or d.path is None, "data.path",
           f"got {d.path!r}, but source {d.source!r} reads no files; set data.source (folder, stl10, ...) "
           "or drop data.path")
    _check(d.limit is None or d.limit > 0, "data.limit", f"got {d.limit}, expected a positive count or null")
    _check(d.val_images >= 1, "data.val_images", f"got {d.val_images}, expected >= 1")
    _check(d.val_patches_per_image >= 1, "data.val_patches_per_image",
           f"got {d.val_patches_per_image}, expected >= 1")
    _check(d.grid_images >= 1, "data.grid_images", f"got {d.grid_images}, expected >= 1")
    _check(d.num_workers >= 0, "data.num_workers", f"got {d.num_workers}, expected >= 0")
    _check(d.device_cache_mb >= 0, "data.device_cache_mb", f"got {d.device_cache_mb:g}, expected >= 0 (MiB)")
    _check(d.frames in (1, 3, 5), "data.frames", f"got {d.frames}, expected 1, 3 or 5 (frames t-k..t+k)")
    _check(d.frames == 1 or d.source in VIDEO_SOURCES, "data.frames",
           f"got {d.frames} with data.source {d.source!r}; a window of frames needs a video source "
           f"({' or '.join(VIDEO_SOURCES)})")
    _check(d.val_frames >= 2, "data.val_frames", f"got {d.val_frames}, expected >= 2 (val_tc compares neighbours)")
    _check(not d.download or d.source in DOWNLOAD_SOURCES, "data.download",
           f"source {d.source!r} cannot download; only {' and '.join(DOWNLOAD_SOURCES)} can")
    for name in ("g_channels", "g_blocks", "d_channels", "d_dense"):
        v = getattr(m, name)
        _check(v >= (0 if name == "g_blocks" else 1), f"model.{name}", f"got {v}, expected a positive size")
    # `0 <= v < inf` is written so that NaN fails too (every comparison with NaN is False)
    _check(0 <= l.beta < math.inf, "loss.beta", f"got {l.beta}, expected >= 0 (finite)")
    _check(0 <= l.pixel_weight < math.inf, "loss.pixel_weight", f"got {l.pixel_weight}, expected >= 0 (finite)")
    _check(0 <= l.vgg_weight < math.inf, "loss.vgg_weight", f"got {l.vgg_weight}, expected >= 0 (finite)")
    _check(l.pixel_weight + l.vgg_weight > 0, "loss.pixel_weight",
           "pixel_weight and vgg_weight are both 0: the generator needs a content loss")
    _check(0 <= l.gp_weight < math.inf, "loss.gp_weight", f"got {l.gp_weight}, expected >= 0 (finite)")
    _check(l.fourier_weight >= 0, "loss.fourier_weight", f"got {l.fourier_weight}, expected >= 0")
    _check(m.g_domain == "spatial" or d.frames == 1, "model.g_domain",
           f"got {m.g_domain!r} with data.frames {d.frames}; the Fourier-domain generators are single-image only")
    for name in ("lr_g", "lr_d", "lr_pretrain"):
        v = getattr(o, name)
        _check(0 < v < 1, f"optim.{name}", f"got {v}, expected a learning rate in (0, 1)")
    _check(not (l.family == "wgan_gp" and m.d_norm == "batch"), "model.d_norm",
           "batch with loss.family wgan_gp: the gradient penalty is per sample and BatchNorm couples a batch's "
           "samples; use model.d_norm layer or none")
    for name in ("beta1_g", "beta1_d", "beta2", "beta1_pretrain", "beta2_pretrain"):
        v = getattr(o, name)
        _check(0 <= v < 1, f"optim.{name}", f"got {v}, expected an Adam beta in [0, 1)")
    _check(o.grad_clip is None or 0 < o.grad_clip < math.inf, "optim.grad_clip",
           f"got {o.grad_clip}, expected > 0 (finite) or null")
    _check(o.warmup_epochs >= 0, "optim.warmup_epochs", f"got {o.warmup_epochs}, expected >= 0")
    _check(o.step_epochs >= 1, "optim.step_epochs", f"got {o.step_epochs}, expected >= 1")
    _check(0 < o.gamma <= 1, "optim.gamma", f"got {o.gamma}, expected a factor in (0, 1]")
    _check(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", f"got {o.min_lr_ratio}, expected in [0, 1]")
    _check(0 <= o.ema_decay < 1, "optim.ema_decay", f"got {o.ema_decay}, expected in [0, 1) (0 = off)")
    _check(l.charbonnier_eps > 0, "loss.charbonnier_eps", f"got {l.charbonnier_eps}, expected > 0")
    _check(s.pretrain_epochs >= 0, "schedule.pretrain_epochs", f"got {s.pretrain_epochs}, expected >= 0")
    _check(s.gan_epochs >= 0, "schedule.gan_epochs", f"got {s.gan_epochs}, expected >= 0")
    _check(s.pretrain_epochs + s.gan_epochs >= 1, "schedule.gan_epochs",
           "pretrain_epochs + gan_epochs is 0: nothing to train")
    _check(s.batch_size >= 1, "schedule.batch_size", f"got {s.batch_size}, expected >= 1")
    _check(s.patches_per_epoch >= s.batch_size, "schedule.patches_per_epoch",
           f"got {s.patches_per_epoch}, expected >= batch_size ({s.batch_size})")
    _check(s.d_steps_per_g >= 1, "schedule.d_steps_per_g", f"got {s.d_steps_per_g}, expected >= 1")
    _check(r.debug_nan_step is None or r.debug_nan_step >= 1, "runtime.debug_nan_step",
           f"got {r.debug_nan_step}, expected >= 1 or null")
    _check(cfg.eval.max_pixels is None or cfg.eval.max_pixels >= 1, "eval.max_pixels",
           f"got {cfg.eval.max_pixels}, expected a positive pixel count or null")
    _check(all(b.strip() for b in cfg.eval.benchmarks), "eval.benchmarks",
           "an empty name; expected set names (Set5) or folder paths")
    _check(r.threads is None or r.threads >= 1, "runtime.threads", f"got {r.threads}, expected >= 1 or null")
    _check(not (r.channels_last and d.frames > 1), "runtime.channels_last",
           "not supported with data.frames > 1 (the temporal front end's 3D convolutions have 5-D weights)")
    return cfg


# ----------------------------------------------------------------------------- loading


def from_dict(tree: Mapping[str, Any]) -> TrialConfig:
    """Build and validate a config from a nested mapping (missing keys take defaults)."""
    return validate(build_dataclass(TrialConfig, tree))


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                base: Mapping[str, Any] | None = None) -> TrialConfig:
    """Defaults <- `base` mapping <- YAML file <- dotted overrides, then validate."""
    tree: dict[str, Any] = deep_copy(base or {})
    if path is not None:
        tree = merge(tree, read_yaml(path))
    if overrides:
        tree = apply_overrides(tree, overrides)
    return from_dict(tree)


def dump_yaml(cfg: TrialConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
