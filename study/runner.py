"""Ray glue: each Tune trial is a function that fits a Ray Train TorchTrainer running `trainables.train`.

Nesting (Ray Train V2): Tuner -> function trainable (tiny CPU reservation, the trial
driver) -> TorchTrainer(ScalingConfig(workers)) -> every worker calls `train(config,
report)`. Workers report with `ray.train.report`; rank 0's reports reach Tune through the trial
driver's own thread (study/forwarding.py), and ASHA and Optuna see them there. The Train run of a
trial is named after the trial id, so a restarted trial finds its own checkpoints and resumes.
MLflow child runs are written by the study driver from the results Tune accepted (study/recorder.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.search import ConcurrencyLimiter, Repeater
from ray.tune.search.optuna import OptunaSearch

from study.forwarding import ForwardReports, Relay, fit_forwarding
from study.results import TRIAL_INDEX
from study.space import optuna_space
from study.spec import Objective, StudySpec, searched_keys, selection_metric, selection_values, trial_config
from trainables.config import from_dict
from trainables.errors import UserError

DRIVER_CPU = 0.01  # the trial driver's reservation: 1 CPU per driver deadlocks small machines
# Train's controller polls workers for reports every this many seconds (Ray's default is
# 2 s, which dominates short CPU epochs); a trial's reports reach Tune this much sooner.
REPORT_POLL_S = "0.2"
SELECTION_FILE = "selection.json"  # in each checkpoint: the objectives' best values so far
WORKER_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": REPORT_POLL_S,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}
# metrics that are not numbers stay out of Tune's numeric views and MLflow's metrics
TEXT_METRICS = ("phase", "status", "grid_path")


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The trainer's metrics as Tune sees them: numbers, plus `phase` and `status` as text."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "grid_path":
            continue
        if key in TEXT_METRICS or isinstance(value, (int, float)):
            out[key] = value
    return out


# ----------------------------------------------------------------------------- workers


def worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: resume from Train's latest checkpoint, train, report."""
    from trainables.train import train  # imported on the worker, after Ray set its env

    cfg = from_dict(loop_config["config"])
    # the study driver writes MLflow from the results Tune accepts (study/recorder.py); rank 0
    # only puts each epoch's sample grid into the study's storage, before reporting that epoch
    grids = loop_config.get("grids") if ray.train.get_context().get_world_rank() == 0 else None
    objective = loop_config["objective"]
    pbt_run = loop_config.get("pbt")  # population-based training (study/pbt.py)
    # the selection rule (study/spec.py): Tune sees best_<metric>, the best value so far; kept in
    # each checkpoint so a resumed trial carries it on
    best_so_far: dict[str, float] = {}
    modes = loop_config.get("modes") or ["max"] * len(objective)

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        clean = scalar_metrics(metrics)
        if pbt_run is not None:
            from study.pbt import hp_metrics, write_origin

            clean.update(hp_metrics(cfg, pbt_run["keys"]))
            if ckpt_dir:
                write_origin(ckpt_dir, pbt_run["trial_id"], int(metrics["epoch"]), hp_metrics(cfg, pbt_run["keys"]))
        if metrics.get("status") == "diverged":
            # a diverged epoch has no validation: its own objective value is NaN; the trial keeps
            # its best epoch so far (NaN too when it never validated: Optuna records it failed)
            for name in objective:
                clean.setdefault(name, float("nan"))
        clean.update(selection_values(best_so_far, clean, Objective(tuple(objective), tuple(modes))))
        if ckpt_dir:
            (Path(ckpt_dir) / SELECTION_FILE).write_text(json.dumps(best_so_far))
        if grids is not None:  # with MLflow: the epoch's grid and generator, for the driver to log once accepted
            from study.recorder import generator_uri, grid_uri, put_generator, put_file

            epoch = int(metrics["epoch"])
            if metrics.get("grid_path"):
                put_file(metrics["grid_path"], grid_uri(grids["study_dir"], grids["trial_id"], epoch))
            if ckpt_dir:
                put_generator(ckpt_dir, generator_uri(grids["study_dir"], grids["trial_id"], epoch))
        checkpoint = Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        ray.train.report(clean, checkpoint=checkpoint)

    out_dir = Path(tempfile.mkdtemp(prefix="srstudy-trial-"))
    resume = ray.train.get_checkpoint()
    if resume is None and pbt_run is not None:
        resume = pbt_run["start_from"]  # a fresh Train run of a PBT trial starts from Tune's checkpoint
    try:
        if resume is not None:
            with resume.as_directory() as ckpt:
                if (Path(ckpt) / SELECTION_FILE).is_file():
                    best_so_far.update(json.loads((Path(ckpt) / SELECTION_FILE).read_text()))
                train(cfg, report=report, out_dir=out_dir, resume_from=ckpt)
        else:
            train(cfg, report=report, out_dir=out_dir)
    finally:
        # every epoch's checkpoint was copied to the study's storage by ray.train.report
        shutil.rmtree(out_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- trials


def trial_driver(config: dict[str, Any], spec_dict: dict[str, Any], storage: str,
                 tracking: dict[str, Any] | None) -> None:
    """The Tune function trainable: build the trial config, fit a TorchTrainer on it."""
    from study.spec import from_dict as spec_from_dict

    spec = spec_from_dict(spec_dict)
    sampled = {k: v for k, v in config.items() if k in searched_keys(spec)}
    repeat = int(config.get(TRIAL_INDEX, 0))
    cfg = trial_config(spec, sampled, repeat)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    r = spec.resources
    train_storage = study_path(spec, storage) + "/train_runs"
    pbt_run = None
    if spec.scheduler.type == "pbt":  # a fresh Train run from Tune's checkpoint (own or a donor's)
        from study.pbt import prepare

        pbt_run = prepare(trial_id, train_storage)
    relay = pbt_run.relay if pbt_run else Relay.remote()
    # where rank 0 puts its sample grids for the driver's MLflow records (when MLflow is on)
    grids = {"study_dir": study_path(spec, storage), "trial_id": trial_id} if tracking is not None else None
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"config": cfg.to_dict(), "grids": grids,
                           "objective": list(spec.objective.metrics), "modes": list(spec.objective.modes),
                           **(pbt_run.loop_config(trial_id, list(spec.scheduler.pbt.mutations)) if pbt_run else {})},
        scaling_config=ScalingConfig(
            num_workers=r.workers,
            use_gpu=r.gpus_per_worker > 0,
            resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})},
        ),
        run_config=RunConfig(
            # stable: a restored trial resumes from its checkpoint (PBT: fresh, from Tune's checkpoint)
            name=pbt_run.run_name if pbt_run else f"train-{trial_id}",
            storage_path=train_storage,
            callbacks=[ForwardReports(relay)],
            # the best epoch by the first objective, plus (always) the latest to resume from
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=spec.objective.metrics[0],
                                               checkpoint_score_order=spec.objective.modes[0]),
            failure_config=FailureConfig(max_failures=r.max_failures),  # then the trial fails
        ),
    )
    if pbt_run is not None:
        pbt_run.fit(trainer)  # reports each epoch to Tune with its checkpoint
    else:  # metrics only: Train persisted the checkpoint, its path rides along as `checkpoint_path`
        fit_forwarding(trainer, relay, lambda metrics, _checkpoint: tune.report(metrics))


def build_tuner(spec: StudySpec, storage: str, tracking: dict[str, Any] | None, concurrency: int) -> tune.Tuner:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress lines say what matters
    o = spec.objective
    # the searcher and ASHA see each objective's best value so far (study/spec.py: selection rule)
    searcher = OptunaSearch(
        space=optuna_space(spec.space),
        metric=[selection_metric(m) for m in o.metrics] if o.multi else selection_metric(o.metric),
        mode=list(o.modes) if o.multi else o.mode,
        sampler=spec.searcher.sampler(spec.space),
    )
    search_alg: Any = searcher
    if spec.repeats > 1:
        search_alg = Repeater(searcher, repeat=spec.repeats, set_index=True)
    search_alg = ConcurrencyLimiter(search_alg, max_concurrent=concurrency)
    scheduler = None
    if spec.scheduler.type == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(
            time_attr="epoch", max_t=spec.scheduler.max_t, grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor, metric=selection_metric(o.metric), mode=o.mode)
    param_space, tune_checkpoints, reuse = None, None, None
    if spec.scheduler.type == "pbt":  # Tune's PBT takes no searcher: a random initial population
        from study import pbt

        search_alg, scheduler, param_space = pbt.search_alg(spec), pbt.make_scheduler(spec), pbt.param_space(spec)
        tune_checkpoints, reuse = pbt.checkpoint_config(spec), False  # an exploited trial restarts its driver
    from study.progress import ProgressPrinter

    return tune.Tuner(
        trainable(spec, storage, tracking), param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=spec.total_trials,
                                    max_concurrent_trials=concurrency, reuse_actors=reuse),
        run_config=tune.RunConfig(name=spec.name, storage_path=storage, verbose=0, checkpoint_config=tune_checkpoints,
                                  callbacks=[ProgressPrinter(spec), *recorders(spec, storage, tracking)],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def trainable(spec: StudySpec, storage: str, tracking: dict[str, Any] | None) -> Any:
    """The trial driver as Tune runs it: the spec and settings bound, DRIVER_CPU reserved."""
    bound = tune.with_parameters(trial_driver, spec_dict=spec.source or spec.to_dict(), storage=storage,
                                 tracking=tracking)
    return tune.with_resources(bound, {"cpu": DRIVER_CPU})


def restore_tuner(spec: StudySpec, storage: str, tracking: dict[str, Any] | None) -> tune.Tuner:
    tuner = tune.Tuner.restore(study_path(spec, storage), trainable=trainable(spec, storage, tracking),
                               resume_errored=True, resume_unfinished=True)
    # the restored study's callbacks were pickled with it: record into this run's MLflow settings
    from study.recorder import TrialRecorder

    run_config = tuner._local_tuner.get_run_config()
    run_config.callbacks = [c for c in run_config.callbacks or [] if not isinstance(c, TrialRecorder)]
    run_config.callbacks += recorders(spec, storage, tracking)
    return tuner


def recorders(spec: StudySpec, storage: str, tracking: dict[str, Any] | None) -> list:
    """The driver's MLflow recorder of accepted trial results (none without MLflow)."""
    from study.recorder import TrialRecorder

    return [] if tracking is None else [TrialRecorder(spec, tracking, study_path(spec, storage))]


def study_path(spec: StudySpec, storage: str) -> str:
    return storage.rstrip("/") + "/" + spec.name


# ----------------------------------------------------------------------------- cluster


def check_reachable(address: str, flag: str) -> None:
    """A `host:port` (or `ray://host:port`) Ray address that no process answers at is one UserError in
    seconds (`ray.init` would retry for minutes); `auto` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise UserError(f"{flag} {address}: no Ray cluster answers there ({exc.strerror or exc}); give the address "
                        "`ray status` shows on the head node (host:6379), or leave it out for a local Ray") from None


def start_ray(address: str | None) -> int:
    """Join `address` (or RAY_ADDRESS) when given; else start a local Ray sized to this machine.

    Returns the logical CPUs added for trial drivers: a local Ray gets one CPU more than
    the machine has, because each trial driver reserves DRIVER_CPU and otherwise two
    1-CPU trials could never run side by side on 2 cores (2 x 1.01 > 2). The drivers
    only wait on their workers, and `plan_concurrency` does not count that extra CPU.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    extra = 0 if address else 1
    env = dict(WORKER_ENV)
    for key in ("MLFLOW_TRACKING_URI", "SR_BENCHMARKS"):
        if key in os.environ:
            env[key] = os.environ[key]
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_POLL_S)
    # Tune snapshots the study's state every this many seconds (default: adaptive, often
    # tens of seconds); a killed driver then loses at most that much bookkeeping, so
    # `--resume` does not restart trials that had already finished
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    kwargs: dict[str, Any] = {}
    if extra:
        kwargs["num_cpus"] = (os.cpu_count() or 1) + extra
        # one machine is not preempted: no per-trial preemption-watcher actor (a process each)
        env["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
    ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False,
             logging_level="ERROR", **kwargs)
    return extra


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "fuse.", "9p", "virtiofs", "efs", "wekafs")


def filesystem_type(path: str) -> str:
    """The fstype of the mount holding `path` (from /proc/mounts), or '' where unknown."""
    target = os.path.realpath(path)
    best, fstype = "", ""
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
                    if len(parts[1]) > len(best):
                        best, fstype = parts[1], parts[2]
    except OSError:
        return ""
    return fstype


def check_storage(storage: str) -> None:
    """A cluster that spans several hosts needs storage every node can reach.

    URIs (s3://, gs://, ...) are shared; so is a path on a network filesystem. A plain
    local path on a multi-host cluster would scatter checkpoints over the nodes' disks, so
    it is refused unless SRSTUDY_SHARED_STORAGE=1 says the path is shared some other way.
    """
    if "://" in storage or os.environ.get("SRSTUDY_SHARED_STORAGE") == "1":
        return
    hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
    if len(hosts) <= 1:
        return
    fstype = filesystem_type(storage)
    if any(fstype == fs or fstype.startswith(fs) for fs in NETWORK_FILESYSTEMS):
        return
    raise UserError(f"storage {storage}: a local path ({fstype or 'unknown'} filesystem) on a cluster of "
                    f"{len(hosts)} hosts; give a path on shared storage (NFS, Lustre, ...) or a URI such as "
                    f"s3://bucket/studies (set SRSTUDY_SHARED_STORAGE=1 if this path is shared)")


def local_gpus() -> int:
    """GPUs a local Ray would see (it honours CUDA_VISIBLE_DEVICES as torch does)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_fits_locally(spec: StudySpec) -> None:
    """Refuse a trial that cannot fit on this machine before a local Ray starts (that takes ~10 s)."""
    trials_that_fit(spec, float(os.cpu_count() or 1), float(local_gpus()), driver_cpus=1)


def plan_concurrency(spec: StudySpec, driver_cpus: int = 0) -> int:
    """How many trials can run at once on this cluster; UserError when one trial cannot fit at all."""
    total = ray.cluster_resources()
    return trials_that_fit(spec, total.get("CPU", 0.0) - driver_cpus, total.get("GPU", 0.0), driver_cpus)


def trials_that_fit(spec: StudySpec, cpus: float, gpus: float, driver_cpus: int) -> int:
    """Trials at once on `cpus` CPUs and `gpus` GPUs (not counting the drivers' extra CPUs)."""
    r = spec.resources
    need_cpu = r.workers * r.cpus_per_worker
    need_gpu = r.workers * r.gpus_per_worker
    if need_gpu > gpus:
        raise UserError(f"resources: a trial needs {need_gpu:g} GPU(s) ({r.workers} workers x {r.gpus_per_worker:g}) "
                        f"but the cluster has {gpus:g}; lower resources.gpus_per_worker or add GPU nodes")
    if need_cpu + (0 if driver_cpus else DRIVER_CPU) > cpus:
        raise UserError(f"resources: a trial needs {need_cpu:g} CPU(s) ({r.workers} workers x "
                        f"{r.cpus_per_worker:g}) but the cluster has {cpus:g}; lower resources.workers or cpus_per_worker")
    fit = math.floor(cpus / need_cpu) if driver_cpus else math.floor((cpus - 0.01) / (need_cpu + DRIVER_CPU))
    if need_gpu > 0:
        if need_gpu < 1:  # a fraction packs single-worker trials per card: 0.3 fits 3 on a GPU, 9 (not 10) on 3
            fit = min(fit, math.floor(gpus + 1e-9) * math.floor(1 / need_gpu + 1e-9))
        else:
            fit = min(fit, math.floor(gpus / need_gpu + 1e-9))
    fit = max(fit, 1)
    return min(fit, spec.max_concurrent or fit, spec.total_trials)
