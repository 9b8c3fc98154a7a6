"""What a study costs over its trials: `python -m study.bench SPEC.yaml` runs the spec as a study, then
the same trial configs directly with `python -m trainables.train`, at the same concurrency.

    python -m study.bench search_spaces/loss_family.yaml --repeats 2      # 6 trials, 2 at a time on 2 cores
    python -m study.bench search_spaces/loss_family.yaml --packing 1,2,4,8 --set runtime.device=cuda

Prints both wall times and their ratio (study / direct; 1.0 means the study adds nothing), and
each trial's final validation PSNR both ways (they agree per seed: seeding is exact across Ray
and no Ray). `--packing` (GPU machines) reruns the study with 1/n of a GPU per trial and n
trials per card, and prints trial-epochs per GPU-hour for each n. Everything is written under
a temporary folder (`--out` keeps it). Start it alone on the machine: other load skews both
wall times, and it starts a local Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from study.results import TRIAL_INDEX
from study.spec import StudySpec, load_spec, read_yaml, trial_config, with_base_overrides
from trainables.errors import UserError
from trainables.yamlio import parse_set_args



def write_spec(path: str, out: Path, name: str, top: dict[str, Any]) -> Path:
    """A copy of the spec file with top-level keys replaced (trials, repeats, name, resources...)."""
    raw = read_yaml(path)
    raw.update(top, name=name)
    target = out / f"{name}.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def run_study(spec_file: Path, out: Path, name: str, overrides: list[str]) -> float:
    """Wall seconds of `python -m study.run` on the spec (Ray start and MLflow included)."""
    cmd = [sys.executable, "-m", "study.run", str(spec_file), "--name", name, "--storage", str(out / "results"),
           "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]
    for o in overrides:
        cmd += ["--set", o]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    (out / f"{name}.log").write_text(proc.stdout)
    if proc.returncode != 0:
        raise UserError(f"study {name} exited {proc.returncode}; see {out / f'{name}.log'}")
    return wall


def study_trials(spec: StudySpec, out: Path, name: str) -> list[tuple[dict[str, Any], float | None, int]]:
    """(trial config dict, last val_psnr, epochs) of every trial the study ran, from Tune's trial folders."""
    trials = []
    for params in sorted((out / "results" / name).glob("*/params.json")):
        sampled = json.loads(params.read_text())
        repeat = int(sampled.pop(TRIAL_INDEX, 0))
        cfg = trial_config(spec, {k: v for k, v in sampled.items() if k in spec.space}, repeat)
        rows = [json.loads(line) for line in (params.parent / "result.json").read_text().splitlines() if line.strip()]
        psnr = rows[-1].get("val_psnr") if rows else None
        trials.append((cfg.to_dict(), psnr, len(rows)))
    return trials


def run_direct(configs: list[dict[str, Any]], out: Path, concurrency: int, threads: int,
               gpus: int) -> tuple[float, list[float | None]]:
    """Wall seconds of the trials run with `python -m trainables.train`, `concurrency` at a time, and
    each one's last validation PSNR (read from its epoch lines)."""
    jobs = []
    for i, tree in enumerate(configs):
        path = out / "direct" / f"trial_{i}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
        jobs.append(path)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MLFLOW_DISABLE_TELEMETRY="true")  # as Ray gives a worker
    running: list[tuple[int, subprocess.Popen]] = []
    psnr: list[float | None] = [None] * len(jobs)
    logs: dict[int, Path] = {}

    def finish(i: int, proc: subprocess.Popen) -> None:
        proc.wait()
        text = logs[i].read_text()
        found = re.findall(r"val PSNR (\S+)", text)
        psnr[i] = float(found[-1]) if found else None
        if proc.returncode not in (0, 1):  # 1: diverged, a result like any other
            raise UserError(f"direct trial {i} exited {proc.returncode}; see {logs[i]}")

    start = time.perf_counter()
    for i, path in enumerate(jobs):
        while len(running) >= concurrency:
            for j, proc in list(running):
                if proc.poll() is not None:
                    running.remove((j, proc))
                    finish(j, proc)
            time.sleep(0.05)
        logs[i] = out / "direct" / f"trial_{i}.log"
        job_env = dict(env, CUDA_VISIBLE_DEVICES=str(i % gpus)) if gpus else env
        with open(logs[i], "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "trainables.train", str(path), "--out",
                                     str(out / "direct" / f"run_{i}")], cwd=out, env=job_env, stdout=log,
                                    stderr=subprocess.STDOUT)
        running.append((i, proc))
    for j, proc in running:
        finish(j, proc)
    return time.perf_counter() - start, psnr


def local_gpus() -> int:
    from study import runner

    return runner.local_gpus()


def local_concurrency(spec: StudySpec) -> int:
    """The trials a study runs at once on a local Ray on this machine (as `study.run` plans them)."""
    from study import runner

    return runner.trials_that_fit(spec, float(os.cpu_count() or 1), float(runner.local_gpus()), driver_cpus=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="study spec YAML")
    p.add_argument("--trials", type=int, default=None, help="configurations (default: the spec's)")
    p.add_argument("--repeats", type=int, default=None, help="seeds per configuration (default: the spec's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="trial-config override for every trial (repeatable)")
    p.add_argument("--packing", default=None, metavar="N,N,...",
                   help="GPU machines: also run the study at N trials per GPU (1/N GPU each), e.g. 1,2,4,8")
    p.add_argument("--out", default=None, help="keep everything in this folder (default: a temporary one)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="srstudy-bench-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    top = {k: v for k, v in (("trials", args.trials), ("repeats", args.repeats)) if v is not None}
    try:
        parse_set_args(args.overrides)  # fail on a bad --set before anything runs
        spec_file = write_spec(args.spec, out, "bench", top)
        spec = load_spec(spec_file)
        if args.overrides:
            spec = with_base_overrides(spec, parse_set_args(args.overrides))
        concurrency = local_concurrency(spec)
        print(f"{spec.total_trials} trials, {concurrency} at a time; working in {out}", flush=True)
        study_s = run_study(spec_file, out, "bench", args.overrides)
        trials = study_trials(spec, out, "bench")
        print(f"study: {study_s:.1f} s for {len(trials)} trials", flush=True)
        r = spec.resources
        gpus = local_gpus() if r.gpus_per_worker else 0
        direct_s, direct_psnr = run_direct([t[0] for t in trials], out, concurrency,
                                           max(1, int(r.cpus_per_worker)), gpus)
        print(f"direct: {direct_s:.1f} s (python -m trainables.train, {concurrency} at a time)")
        print(f"\nstudy / direct wall time: {study_s / direct_s:.3f}  (target <= 1.10)")
        print("\ntrial  seed  study val_psnr  direct val_psnr")
        for i, ((tree, psnr, _), direct) in enumerate(zip(trials, direct_psnr)):
            print(f"{i:5d} {tree['seed']:5d} {psnr if psnr is None else f'{psnr:14.2f}'} "
                  f"{direct if direct is None else f'{direct:16.2f}'}")
        if args.packing:
            print(packing_table(args, spec, out, [int(n) for n in args.packing.split(",")]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def packing_table(args: argparse.Namespace, spec: StudySpec, out: Path, counts: list[int]) -> str:
    """Trial-epochs per GPU-hour with n single-worker trials per GPU, for each n."""
    gpus = local_gpus()
    if gpus == 0:
        raise UserError("--packing: no GPU on this machine")
    lines = ["\ntrials/GPU  wall s  trial-epochs  per GPU-hour"]
    for n in counts:
        name = f"pack{n}"
        top = {"resources": {"workers": 1, "cpus_per_worker": spec.resources.cpus_per_worker,
                             "gpus_per_worker": round(1 / n, 4)}, "max_concurrent": n * gpus}
        top.update({k: v for k, v in (("trials", args.trials), ("repeats", args.repeats)) if v is not None})
        spec_file = write_spec(args.spec, out, name, top)
        wall = run_study(spec_file, out, name, args.overrides)
        epochs = sum(e for _, _, e in study_trials(load_spec(spec_file), out, name))
        lines.append(f"{n:10d} {wall:7.1f} {epochs:13d} {epochs / (wall / 3600) / gpus:13.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
