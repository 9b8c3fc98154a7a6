"""Bad input across the four CLIs: each case is one line on stderr, exit code 2, no traceback, nothing half-written.

A table of malformed specs, configs, data files, checkpoints, tracking URIs, output folders
and flags for `trainables.train`, `trainables.evaluate`, `study.run` and `reports.build`.
Each case runs the CLI's `main(argv)` in-process in a fresh folder (fast: no Ray, no
training starts), then checks that the folder holds exactly what the case put there: no
empty `runs/train-*`, no `study_results/`, no `mlflow.db`, no MLflow schema written into
a file that was not a database. A few cases run as real subprocesses (`python -m ...`),
and images that are odd but valid (16-bit, grayscale, RGBA, palette) are accepted.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
Setup = Callable[[Path], None]


@dataclass
class Case:
    cli: str  # train | evaluate | study | report
    argv: Callable[[Path], list[str]]
    setup: Setup = lambda tmp: None
    says: str = ""  # a substring the error line must hold
    env: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- files


def write(rel: str, data: bytes | str) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def both(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def png(side: int = 48, mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65535, (side, side), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


RANDOM = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
UTF16 = "seed: 1\n".encode("utf-16")


def yaml_text(tree) -> str:
    return yaml.safe_dump(tree, sort_keys=False)


# ----------------------------------------------------------------------------- trainables.train

TINY = {"data.patch_size": 32, "data.val_images": 1, "data.val_patches_per_image": 1, "data.grid_images": 1,
        "model.g_channels": 8, "model.g_blocks": 1, "model.d_channels": 8, "model.d_dense": 16,
        "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 0, "schedule.patches_per_epoch": 8,
        "schedule.batch_size": 8}


def train(*args: str, setup: Setup = lambda tmp: None, says: str = "") -> Case:
    return Case("train", lambda tmp: [a.format(tmp=tmp) for a in args], setup, says)


def sets(pairs: dict) -> list[str]:
    return [x for k, v in pairs.items() for x in ("--set", f"{k}={v}")]


BAD_VALUES = {  # dotted key -> a value validation refuses (each names its key)
    "seed": "-1", "seed ": str(2**64), "loss.beta": "inf", "loss.beta ": "nan", "loss.beta  ": "-1",
    "loss.pixel_weight": "inf", "loss.pixel_weight ": "-0.5", "loss.gp_weight": "inf", "loss.gp_weight ": "nan",
    "loss.vgg_weight": "nan", "optim.lr_g": "0", "optim.lr_g ": "1.5", "optim.lr_d": "nan", "optim.lr_pretrain": "inf",
    "optim.beta1_g": "1", "optim.beta1_d": "-0.1", "optim.beta2": "nan", "optim.grad_clip": "0",
    "optim.grad_clip ": "inf", "data.patch_size": "17", "data.patch_size ": "8", "scale": "3",
    "model.upsampler": "bilinear", "loss.family": "hinge", "data.source": "mnist", "data.crop": "left",
    "data.limit": "0", "data.val_images": "0", "data.frames": "2", "data.frames ": "3",
    "data.val_patches_per_image": "0", "data.grid_images": "0", "data.num_workers": "-1", "data.download": "true",
    "data.path": "/somewhere", "model.g_channels": "0", "model.d_dense": "0", "model.g_blocks": "-1",
    "schedule.batch_size": "0", "schedule.patches_per_epoch": "4", "schedule.d_steps_per_g": "0",
    "schedule.pretrain_epochs": "-1", "runtime.device": "tpu", "runtime.precision": "fp16",
    "runtime.threads": "0", "runtime.debug_nan_step": "0", "data.augment": "maybe", "model.global_skip": "lanczos",
    "loss.nope": "1", "model.nope": "1", "nope": "1",
}
TRAIN_CASES = {f"train-set-{k.strip()}={v}" + ("" if k == k.strip() else f"-{len(k) - len(k.strip())}"):
               train(*sets({k.strip(): v}), says=k.strip().split(".")[0]) for k, v in BAD_VALUES.items()}
TRAIN_CASES.update({
    "train-set-no-equals": train("--set", "loss.beta"),
    "train-set-empty-key": train("--set", "=1"),
    "train-set-leading-dot": train("--set", ".beta=1", says="'.beta'"),
    "train-set-trailing-dot": train("--set", "loss.=1", says="'loss.'"),
    "train-set-below-a-value": train("--set", "loss.beta.x=1", says="loss.beta"),
    "train-set-section-as-value": train("--set", "loss=1", says="loss"),
    "train-both-pretrain-and-gan-zero": train(*sets({"schedule.pretrain_epochs": 0, "schedule.gan_epochs": 0})),
    "train-no-content-loss": train(*sets({"loss.pixel_weight": 0})),
    "train-channels-last-video": train(*sets({"data.source": "video_builtin", "data.frames": 3,
                                              "runtime.channels_last": "true"})),
    "train-unknown-flag": train("--frobnicate", says="--frobnicate"),
    "train-out-without-value": train("--out", says="--out"),
    "train-two-configs": train("a.yaml", "b.yaml"),
    "train-config-missing": train("{tmp}/nope.yaml", says="nope.yaml"),
    "train-config-is-folder": train("{tmp}/cfgdir", setup=write("cfgdir/x", "")),
    "train-config-binary": train("{tmp}/c.yaml", setup=write("c.yaml", RANDOM), says="UTF-8"),
    "train-config-utf16": train("{tmp}/c.yaml", setup=write("c.yaml", UTF16), says="UTF-8"),
    "train-config-bad-yaml": train("{tmp}/c.yaml", setup=write("c.yaml", "loss: {beta: [1, \n"), says="YAML"),
    "train-config-tabs": train("{tmp}/c.yaml", setup=write("c.yaml", "loss:\n\tbeta: 1\n")),
    "train-config-list": train("{tmp}/c.yaml", setup=write("c.yaml", "- 1\n- 2\n"), says="mapping"),
    "train-config-scalar": train("{tmp}/c.yaml", setup=write("c.yaml", "42\n"), says="mapping"),
    "train-config-duplicate-top": train("{tmp}/c.yaml", setup=write("c.yaml", "seed: 1\nseed: 2\n"), says="'seed'"),
    "train-config-duplicate-nested": train("{tmp}/c.yaml", setup=write("c.yaml", "loss:\n  beta: 1\n  beta: 2\n"),
                                           says="'beta'"),
    "train-config-unknown-section": train("{tmp}/c.yaml", setup=write("c.yaml", "lossy: {beta: 1}\n"), says="lossy"),
    "train-config-section-not-mapping": train("{tmp}/c.yaml", setup=write("c.yaml", "loss: 3\n"), says="loss"),
    "train-config-string-number": train("{tmp}/c.yaml", setup=write("c.yaml", "loss: {beta: 'x'}\n"), says="beta"),
    "train-config-bool-for-int": train("{tmp}/c.yaml", setup=write("c.yaml", "seed: true\n"), says="seed"),
    "train-out-below-file": train("--out", "{tmp}/afile/run", setup=write("afile", "x"), says="not a folder"),
    "train-out-is-file": train("--out", "{tmp}/afile", setup=write("afile", "x"), says="not a folder"),
    "train-out-unwritable": train("--out", "/proc/srstudy-run", says="--out"),
    "train-resume-missing": train("--resume", "{tmp}/nockpt", says="--resume"),
})


# data files: each fails while the images load, before any training step
def folder_data(rel: str, source: str = "folder", **extra) -> list[str]:
    """--set flags of a tiny run that reads `source` data from {tmp}/rel."""
    return [*sets({**TINY, "data.source": source, "data.path": f"{{tmp}}/{rel}", **extra})]


IMAGES_OK = {f"ok{i}.png": png(48, seed=i) for i in range(3)}
DATA_CASES = {
    "folder-missing": ({}, "data.path"),
    "folder-empty": ({"keep": b""}, "no images"),
    "folder-one-image": ({"a.png": png(48)}, "at least 2"),
    "image-random-bytes": ({**IMAGES_OK, "bad.png": RANDOM}, "bad.png"),
    "image-text": ({**IMAGES_OK, "bad.jpg": b"hello, not a jpeg"}, "bad.jpg"),
    "image-empty": ({**IMAGES_OK, "bad.png": b""}, "bad.png"),
    "image-truncated-png": ({**IMAGES_OK, "bad.png": png(64)[:300]}, "bad.png"),
    "image-header-only": ({**IMAGES_OK, "bad.png": png(64)[:40]}, "bad.png"),
    "image-tiny": ({**IMAGES_OK, "tiny.png": png(8)}, "tiny.png"),
    "image-tiny-16bit": ({**IMAGES_OK, "tiny.png": png(8, "I;16")}, "tiny.png"),
    "image-tiny-gray": ({**IMAGES_OK, "tiny.png": png(16, "L")}, "tiny.png"),
}


def data_case(name: str, files: dict[str, bytes], says: str) -> Case:
    def setup(tmp: Path) -> None:
        if name != "folder-missing":
            (tmp / "imgs").mkdir()
        for fname, data in files.items():
            (tmp / "imgs" / fname).write_bytes(data)
    return train(*folder_data("imgs"), setup=setup, says=says)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_NPZ = npz_bytes(data=np.zeros((4, 3 * 64 * 64), np.uint8), labels=np.zeros(4, np.int64))
for name, (files, says) in DATA_CASES.items():
    TRAIN_CASES[f"train-data-{name}"] = data_case(name, files, says)
TRAIN_CASES.update({
    "train-data-stl10-truncated": train(*folder_data("stl", "stl10", **{"data.stl10_split": "train"}),
                                        setup=write("stl/stl10_binary/train_X.bin", b"\0" * 1000), says="train_X.bin"),
    "train-data-stl10-missing": train(*folder_data("stl", "stl10"), setup=write("stl/keep", ""), says="stl10"),
    "train-data-npz-truncated": train(*folder_data("inet", "imagenet64"),
                                      setup=write("inet/train_data_batch_1.npz", GOOD_NPZ[:200]), says=".npz"),
    "train-data-npz-random": train(*folder_data("inet", "imagenet64"),
                                   setup=write("inet/train_data_batch_1.npz", RANDOM), says=".npz"),
    "train-data-npz-no-data": train(*folder_data("inet", "imagenet64"),
                                    setup=write("inet/train_data_batch_1.npz", npz_bytes(x=np.zeros(3))), says="'data'"),
    "train-data-npz-float": train(*folder_data("inet", "imagenet64"),
                                  setup=write("inet/train_data_batch_1.npz",
                                              npz_bytes(data=np.zeros((4, 3 * 64 * 64), np.float32))), says="uint8"),
    "train-data-npz-none": train(*folder_data("inet", "imagenet64"), setup=write("inet/keep", ""), says=".npz"),
    "train-data-celeba-empty": train(*folder_data("celeb", "celeba"), setup=write("celeb/keep", ""), says="CelebA"),
})


# ----------------------------------------------------------------------------- checkpoints


def good_checkpoint(tmp: Path, rel: str = "ckpt", **model) -> Path:
    """A real (tiny) checkpoint folder written by trainables.checkpoint.save."""
    import torch

    from trainables import checkpoint
    from trainables.config import load_config
    from trainables.models import build_discriminator, build_generator

    cfg = load_config(overrides={**TINY, **{f"model.{k}": v for k, v in model.items()}})
    torch.manual_seed(0)
    g, d = build_generator(cfg), build_discriminator(cfg)
    state = {"generator": g.state_dict(), "discriminator": d.state_dict(), "opt_pre": {}, "opt_g": {}, "opt_d": {},
             "epoch": 1, "phase": "pretrain", "g_steps": 1, "d_steps": 0, "best_psnr": 20.0, "best_epoch": 1}
    return checkpoint.save(tmp / rel, cfg, state)


def ckpt_with(state_pt: bytes | None = None, config: str | None = None, config_of: dict | None = None) -> Setup:
    def setup(tmp: Path) -> None:
        folder = good_checkpoint(tmp)
        if state_pt is not None:
            (folder / "state.pt").write_bytes(state_pt)
        if config is not None:
            (folder / "config.yaml").write_text(config)
        if config_of is not None:  # config.yaml of another model size than the weights
            from trainables.config import dump_yaml, load_config

            (folder / "config.yaml").write_text(dump_yaml(load_config(overrides={**TINY, **config_of})))
    return setup


def torch_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def bad_checkpoints() -> dict[str, Setup]:
    import torch

    return {
        "empty-folder": write("ckpt/keep", ""),
        "state-text": ckpt_with(state_pt=b"this is not a checkpoint\n"),
        "state-random": ckpt_with(state_pt=RANDOM),
        "state-empty": ckpt_with(state_pt=b""),
        "state-truncated": lambda tmp: (lambda f: (f / "state.pt").write_bytes((f / "state.pt").read_bytes()[:500]))(
            good_checkpoint(tmp)),
        "state-bare-tensor": ckpt_with(state_pt=torch_bytes(torch.zeros(3))),
        "state-list": ckpt_with(state_pt=torch_bytes([1, 2, 3])),
        "state-no-generator": ckpt_with(state_pt=torch_bytes({"epoch": 1})),
        "config-missing": lambda tmp: (good_checkpoint(tmp) / "config.yaml").unlink(),
        "config-empty": ckpt_with(config=""),
        "config-list": ckpt_with(config="- 1\n- 2\n"),
        "config-malformed": ckpt_with(config="model: {g_channels: [\n"),
        "config-unknown-key": ckpt_with(config="modle: {g_channels: 8}\n"),
        "config-binary": lambda tmp: (good_checkpoint(tmp) / "config.yaml").write_bytes(RANDOM),
    }



# ----------------------------------------------------------------------------- study.run

SPEC = {"name": "bad", "base": dict(TINY), "space": {"loss.beta": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
        "searcher": {"algorithm": "tpe", "seed": 0}, "objective": {"metric": "val_psnr", "mode": "max"},
        "trials": 2, "resources": {"workers": 1, "cpus_per_worker": 1}}


def spec_with(**changes) -> str:
    tree = yaml.safe_load(yaml.safe_dump(SPEC))
    for dotted, value in changes.items():
        node = tree
        *head, last = dotted.split("__")
        for part in head:
            node = node.setdefault(part, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml_text(tree)


DROP = object()


def study(*args: str, spec: str | bytes | None = None, setup: Setup = lambda tmp: None, says: str = "",
          env: dict[str, str] | None = None) -> Case:
    setups = [setup] + ([write("s.yaml", spec)] if spec is not None else [])
    return Case("study", lambda tmp: [a.format(tmp=tmp) for a in args], both(*setups), says, env or {})


SPEC_VALUES = {  # spec field (__ for nesting) -> a refused value
    "name": "has space", "name ": DROP, "trials": 0, "trials ": "many", "repeats": 0, "max_concurrent": 0,
    "scheduler__type": "hyperband", "scheduler__reduction_factor": float("nan"),
    "scheduler__reduction_factor ": float("inf"), "scheduler__reduction_factor  ": 1,
    "scheduler__grace_period": 0, "scheduler__max_t": 0, "resources__cpus_per_worker": float("nan"),
    "resources__cpus_per_worker ": float("inf"), "resources__cpus_per_worker  ": 0,
    "resources__gpus_per_worker": float("nan"), "resources__gpus_per_worker ": float("inf"),
    "resources__gpus_per_worker  ": -1, "resources__workers": 0, "resources__max_failures": -1,
    "resources__nodes": 2, "searcher__algorithm": "cmaes", "searcher__seed": -1, "searcher__n_startup_trials": -1,
    "objective__metric": "val_tc", "objective__metric ": "val_psnrr", "objective__mode": "maximise",
    "base__loss.beta": float("inf"), "base__loss.pixel_weight": float("inf"), "base__loss.gp_weight": float("inf"),
    "base__data.path": "/data/x", "base__seed": 2**64, "base__model.nope": 1,
    "space__loss.betta": {"type": "uniform", "low": 0, "high": 1},
    "space__loss.beta": {"type": "loguniform", "low": 1, "high": 0.1},
    "space__loss.family": {"type": "categorical", "values": []},
    "space__loss.gp_weight": {"type": "normal", "low": 0, "high": 1},
    "storage": " ", "tracking_uri": "", "colour": "blue",
}
def closed_port() -> int:
    """A local port nothing listens on: the OS picks it, the socket closes without listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED_PORT = closed_port()
STUDY_CASES = {f"study-spec-{k.strip()}" + ("" if k == k.strip() else f"-{len(k) - len(k.strip())}"):
               study("{tmp}/s.yaml", spec=spec_with(**{k.strip(): v})) for k, v in SPEC_VALUES.items()}
STUDY_CASES.update({
    "study-spec-missing": study("{tmp}/nope.yaml", says="nope.yaml"),
    "study-spec-binary": study("{tmp}/s.yaml", spec=RANDOM, says="UTF-8"),
    "study-spec-utf16": study("{tmp}/s.yaml", spec=yaml_text(SPEC).encode("utf-16"), says="UTF-8"),
    "study-spec-bad-yaml": study("{tmp}/s.yaml", spec="name: [x\n", says="YAML"),
    "study-spec-list": study("{tmp}/s.yaml", spec="- a\n", says="mapping"),
    "study-spec-empty": study("{tmp}/s.yaml", spec=""),
    "study-spec-duplicate-key": study("{tmp}/s.yaml", spec=yaml_text(SPEC) + "trials: 3\n", says="'trials'"),
    "study-spec-duplicate-nested": study("{tmp}/s.yaml", spec=yaml_text(SPEC).replace(
        "  workers: 1\n", "  workers: 1\n  workers: 2\n"), says="'workers'"),
    "study-set-leading-dot": study("{tmp}/s.yaml", "--set", ".beta=1", spec=yaml_text(SPEC), says="'.beta'"),
    "study-set-unknown": study("{tmp}/s.yaml", "--set", "loss.betta=1", spec=yaml_text(SPEC), says="betta"),
    "study-set-bad-value": study("{tmp}/s.yaml", "--set", "loss.gp_weight=inf", spec=yaml_text(SPEC), says="gp_weight"),
    "study-set-no-equals": study("{tmp}/s.yaml", "--set", "loss.beta", spec=yaml_text(SPEC)),
    "study-trials-zero": study("{tmp}/s.yaml", "--trials", "0", spec=yaml_text(SPEC), says="trials"),
    "study-trials-text": study("{tmp}/s.yaml", "--trials", "x", spec=yaml_text(SPEC), says="--trials"),
    "study-name-bad": study("{tmp}/s.yaml", "--name", "a/b", spec=yaml_text(SPEC), says="name"),
    "study-unknown-flag": study("{tmp}/s.yaml", "--gpus", "2", spec=yaml_text(SPEC), says="--gpus"),
    "study-no-spec": study(says="spec"),
    "study-storage-below-file": study("{tmp}/s.yaml", "--storage", "{tmp}/afile/res", spec=yaml_text(SPEC),
                                      setup=write("afile", "x"), says="not a folder"),
    "study-storage-unwritable": study("{tmp}/s.yaml", "--storage", "/proc/srstudy-results", spec=yaml_text(SPEC),
                                      says="--storage"),
    "study-tracking-text-file": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:///{tmp}/notes.txt",
                                      spec=yaml_text(SPEC), setup=write("notes.txt", "hello\n"), says="SQLite"),
    "study-tracking-empty-file": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:///{tmp}/empty.db",
                                       spec=yaml_text(SPEC), setup=write("empty.db", b""), says="empty"),
    "study-tracking-random-file": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:///{tmp}/r.db",
                                        spec=yaml_text(SPEC), setup=write("r.db", RANDOM), says="SQLite"),
    "study-tracking-folder": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:///{tmp}/dir", spec=yaml_text(SPEC),
                                   setup=write("dir/x", ""), says="folder"),
    "study-tracking-unwritable": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:////proc/srstudy/m.db",
                                       spec=yaml_text(SPEC), says="--tracking-uri"),
    "study-tracking-below-file": study("{tmp}/s.yaml", "--tracking-uri", "sqlite:///{tmp}/afile/m.db",
                                       spec=yaml_text(SPEC), setup=write("afile", "x"), says="not a folder"),
    "study-tracking-plain-path": study("{tmp}/s.yaml", "--tracking-uri", "{tmp}/notes.txt", spec=yaml_text(SPEC),
                                       setup=write("notes.txt", "hello\n"), says="file store"),
    "study-tracking-file-uri": study("{tmp}/s.yaml", "--tracking-uri", "file://{tmp}/mlruns", spec=yaml_text(SPEC),
                                     says="file store"),
    "study-tracking-env-plain-path": study("{tmp}/s.yaml", spec=yaml_text(SPEC), says="file store",
                                           env={"MLFLOW_TRACKING_URI": "mlruns"}),
    "study-resume-nothing": study("{tmp}/s.yaml", "--resume", spec=yaml_text(SPEC), says="--resume"),
    "study-exists-no-resume": study("{tmp}/s.yaml", spec=yaml_text(SPEC), setup=write("study_results/bad/tuner.pkl", "x"),
                                    says="--resume"),
    "study-too-many-cpus": study("{tmp}/s.yaml", "--set", "runtime.threads=1", spec=spec_with(
        resources__cpus_per_worker=4096), says="CPU"),
    "study-too-many-workers": study("{tmp}/s.yaml", spec=spec_with(resources__workers=4096), says="CPU"),
    "study-ray-address-closed": study("{tmp}/s.yaml", "--address", f"127.0.0.1:{CLOSED_PORT}", spec=yaml_text(SPEC),
                                      says="no Ray cluster answers"),
    "study-ray-address-env-closed": study("{tmp}/s.yaml", spec=yaml_text(SPEC), says="RAY_ADDRESS",
                                          env={"RAY_ADDRESS": f"127.0.0.1:{CLOSED_PORT}"}),
    "study-ray-job-no-storage": study("{tmp}/s.yaml", spec=yaml_text(SPEC), says="ray job submit",
                                      env={"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}),
    "study-ray-job-relative-storage": study("{tmp}/s.yaml", "--storage", "res", "--tracking-uri", "http://h:5000",
                                            spec=yaml_text(SPEC), says="--storage",
                                            env={"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}),
})


# ----------------------------------------------------------------------------- evaluate, reports.build


def evaluate(*args: str, setup: Setup = lambda tmp: None, says: str = "") -> Case:
    return Case("evaluate", lambda tmp: [a.format(tmp=tmp) for a in args], setup, says)


def report(*args: str, setup: Setup = lambda tmp: None, says: str = "") -> Case:
    return Case("report", lambda tmp: [a.format(tmp=tmp) for a in args], setup, says)


def images(files: dict[str, bytes], rel: str = "imgs") -> Setup:
    return both(*(write(f"{rel}/{k}", v) for k, v in files.items()))


EVAL_CASES = {
    "eval-scale-5": evaluate("--data", "{tmp}/imgs", "--scale", "5", setup=images(IMAGES_OK), says="--scale"),
    "eval-scale-text": evaluate("--scale", "two", says="--scale"),
    "eval-scale-missing": evaluate("--data", "{tmp}/imgs", setup=images(IMAGES_OK), says="--scale"),
    "eval-method": evaluate("--data", "{tmp}/imgs", "--scale", "2", "--method", "lanczos", setup=images(IMAGES_OK),
                            says="lanczos"),
    "eval-data-missing": evaluate("--data", "{tmp}/nope", "--scale", "2", says="--data"),
    "eval-data-file": evaluate("--data", "{tmp}/afile", "--scale", "2", setup=write("afile", "x"), says="--data"),
    "eval-data-empty": evaluate("--data", "{tmp}/imgs", "--scale", "2", setup=write("imgs/keep.txt", ""), says="no images"),
    "eval-unknown-flag": evaluate("--fast", says="--fast"),
    "eval-checkpoint-missing": evaluate("--data", "{tmp}/imgs", "--checkpoint", "{tmp}/nope", setup=images(IMAGES_OK),
                                        says="--checkpoint"),
    "eval-checkpoint-other-size": evaluate("--data", "{tmp}/imgs", "--checkpoint", "{tmp}/ckpt",
                                           setup=both(images(IMAGES_OK), ckpt_with(config_of={"model.g_channels": 16})),
                                           says="--checkpoint"),
    "eval-checkpoint-scale-mismatch": evaluate("--data", "{tmp}/imgs", "--checkpoint", "{tmp}/ckpt", "--scale", "4",
                                               setup=both(images(IMAGES_OK), ckpt_with()), says="--scale"),
}
for name, (files, says) in DATA_CASES.items():
    if name.startswith("image-"):  # the same broken files, scored at x4 (at least 19 px a side)
        EVAL_CASES[f"eval-{name}"] = evaluate("--data", "{tmp}/imgs", "--scale", "4", setup=images(files), says=says)
TRAIN_CASES["train-resume-other-size"] = train("--resume", "{tmp}/ckpt", *sets({**TINY, "model.g_channels": 16}),
                                               setup=ckpt_with(), says="g_channels")

REPORT_CASES = {
    "report-no-study": report(says="study"),
    "report-db-missing": report("s", "--tracking-uri", "sqlite:///{tmp}/nope.db", says="no MLflow store"),
    "report-db-empty-file": report("s", "--tracking-uri", "sqlite:///{tmp}/e.db", setup=write("e.db", b""), says="empty"),
    "report-db-text-file": report("s", "--tracking-uri", "sqlite:///{tmp}/t.db", setup=write("t.db", "hi\n"),
                                  says="SQLite"),
    "report-db-random": report("s", "--tracking-uri", "sqlite:///{tmp}/r.db", setup=write("r.db", RANDOM),
                               says="SQLite"),
    "report-db-folder": report("s", "--tracking-uri", "sqlite:///{tmp}/d", setup=write("d/x", ""), says="folder"),
    "report-tracking-plain-path": report("s", "--tracking-uri", "{tmp}/t.txt", setup=write("t.txt", "hi"),
                                         says="file store"),
    "report-default-db-missing": report("s", says="no MLflow store"),
    "report-bins-zero": report("s", "--bins", "0", says="--bins"),
    "report-top-zero": report("s", "--top", "0", says="--top"),
    "report-bins-text": report("s", "--bins", "many", says="--bins"),
    "report-unknown-flag": report("s", "--pdf", says="--pdf"),
    "report-out-below-file": report("s", "--tracking-uri", "sqlite:///{tmp}/m.db", "--out", "{tmp}/afile/r",
                                    setup=both(write("afile", "x"), lambda tmp: _mlflow_db(tmp / "m.db")),
                                    says="not a folder"),
    "report-unknown-study": report("nostudy", "--tracking-uri", "sqlite:///{tmp}/m.db",
                                   setup=lambda tmp: _mlflow_db(tmp / "m.db"), says="nostudy"),
}


def _mlflow_db(path: Path) -> None:
    """A real, empty MLflow store: copied from one made once per session (creating one takes seconds)."""
    import shutil

    global _DB_TEMPLATE
    if _DB_TEMPLATE is None:
        import tempfile

        import logging

        from mlflow.tracking import MlflowClient

        _DB_TEMPLATE = Path(tempfile.mkdtemp(prefix="srstudy-db-")) / "template.db"
        quiet = logging.getLogger("mlflow")
        level, quiet.level = quiet.level, logging.ERROR  # its schema messages are not the CLI's output
        try:
            MlflowClient(f"sqlite:///{_DB_TEMPLATE}").search_experiments()
        finally:
            quiet.setLevel(level)
    shutil.copyfile(_DB_TEMPLATE, path)


_DB_TEMPLATE: Path | None = None


# ----------------------------------------------------------------------------- the table

for name, setup in bad_checkpoints().items():
    TRAIN_CASES[f"train-resume-{name}"] = train("--resume", "{tmp}/ckpt", *sets(TINY), setup=setup, says="--resume")
    EVAL_CASES[f"eval-checkpoint-{name}"] = evaluate("--data", "{tmp}/imgs", "--checkpoint", "{tmp}/ckpt",
                                                     setup=both(images(IMAGES_OK), setup), says="--checkpoint")
CASES = {**TRAIN_CASES, **STUDY_CASES, **EVAL_CASES, **REPORT_CASES}


def main_of(cli: str) -> Callable[[list[str]], int]:
    if cli == "train":
        from trainables.train import main
    elif cli == "evaluate":
        from trainables.evaluate import main
    elif cli == "study":
        from study.run import main
    else:
        from reports.build import main
    return main


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time: what a case may not change."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh current folder with no tracking URI, Ray address or Ray job in the environment."""
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_table_is_large_and_covers_every_cli():
    counts = {cli: sum(c.cli == cli for c in CASES.values()) for cli in ("train", "evaluate", "study", "report")}
    assert len(CASES) >= 150 and min(counts.values()) >= 10, counts


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(name, workdir, monkeypatch, capsys):
    case = CASES[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    case.setup(workdir)
    before = snapshot(workdir)
    try:
        code = main_of(case.cli)(case.argv(workdir))
    except SystemExit as exc:  # argparse exits; the shared parser makes that one line too
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.says in lines[0], lines[0]
    assert snapshot(workdir) == before, "a failed run left something behind"


SUBPROCESS = {  # the real entry points, as a user types them
    "study.run": (["{tmp}/s.yaml"], write("s.yaml", RANDOM)),
    "trainables.train": (["--set", ".beta=1"], lambda tmp: None),
    "reports.build": (["s", "--tracking-uri", "sqlite:///{tmp}/e.db"], write("e.db", b"")),
}


@pytest.mark.parametrize("module", sorted(SUBPROCESS))
def test_entry_points_print_one_line(module, workdir):
    args, setup = SUBPROCESS[module]
    setup(workdir)
    before = snapshot(workdir)
    done = subprocess.run([sys.executable, "-m", module, *[a.format(tmp=workdir) for a in args]], cwd=workdir,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------- odd but valid images

ODD_BUT_VALID = {"gray.png": png(48, "L"), "gray16.png": png(48, "I;16"), "rgba.png": png(48, "RGBA"),
                 "palette.png": png(48, "P"), "bw.png": png(48, "1")}


def test_odd_but_valid_images_are_converted_for_training(tmp_path):
    from trainables.sources import decode_image

    for name, data in ODD_BUT_VALID.items():
        (tmp_path / name).write_bytes(data)
        arr = decode_image(tmp_path / name, 32)
        assert arr.shape == (48, 48, 3) and arr.dtype == np.uint8, name


def test_odd_but_valid_images_are_scored_by_evaluate(workdir, capsys):
    from trainables.evaluate import main

    images(ODD_BUT_VALID)(workdir)
    assert main(["--data", str(workdir / "imgs"), "--scale", "2", "--json"]) == 0
    out = capsys.readouterr().out
    import json

    rows = json.loads(out)["images"]
    assert sorted(r["image"] for r in rows) == sorted(ODD_BUT_VALID)
    assert {r["image"]: r["channels"] for r in rows}["rgba.png"] == 3
    assert {r["image"]: r["channels"] for r in rows}["gray16.png"] == 1
