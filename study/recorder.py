"""The study driver records each trial's MLflow child run from the results Tune accepted.

Why the driver and not the trial's workers: a worker reports epoch k with
`ray.train.report` and trains on while Tune (and ASHA) decide what to do with it; a worker
that logged to MLflow itself would record epochs Tune never accepted (ASHA stopped the
trial after epoch 1, MLflow shows epoch 2 too). Tune calls `on_trial_result` exactly for
the results it accepts, including the one on which ASHA stops a trial, and for no result
after that, so this callback makes MLflow hold the same epochs as the results table.
It is also the only writer of child runs (one process, also right for a SQLite store).

Sample grids (images) cannot travel in Tune's results, so rank 0 writes each epoch's grid
to the study's storage (`<study>/grids/<trial id>/epoch_0001.png`, local path or URI)
before it reports that epoch; when Tune accepts the epoch this callback logs that file as
the epoch's image. A grid of an epoch Tune never accepted stays in storage, unlogged.

One point per (metric, epoch): a restarted trial (a Train worker retry, a finished trial
re-reporting its last epoch, a `--resume` after the driver died) continues the child run
found by its trial-id tag, and epochs that run already holds are not logged again.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from study.results import TRIAL_INDEX
from study.spec import StudySpec, searched_keys, trial_config
from study.tracking import TrialTracker
from trainables.checkpoint import CONFIG_FILE, GENERATOR_FILE

# what Tune adds to every result (the trainer's own metrics are all the rest)
TUNE_KEYS = frozenset(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint",
                                           "checkpoint_path", "episodes_this_iter", "timesteps_this_iter",
                                           TRIAL_INDEX}


# ----------------------------------------------------------------------------- grids in storage


def grid_uri(study_dir: str, trial_id: str, epoch: int) -> str:
    """Where rank 0 puts an epoch's sample grid: beside the study's results (a path or a URI)."""
    return f"{study_dir.rstrip('/')}/grids/{trial_id}/epoch_{epoch:04d}.png"


def put_file(local: str, uri: str) -> None:
    """Copy a file (a grid PNG) to storage: written before the epoch is reported, so it is there when Tune accepts it."""
    filesystem, path = pafs.FileSystem.from_uri(uri)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with open(local, "rb") as src, filesystem.open_output_stream(path) as dst:
        dst.write(src.read())


def generator_uri(study_dir: str, trial_id: str, epoch: int) -> str:
    """Where rank 0 puts an epoch's generator (generator.pt + config.yaml, from its checkpoint).

    The study's own copy, not Train's checkpoint: Train keeps the best-scoring checkpoints of
    the epochs its worker reported, and a worker trains on after a report, so when ASHA stops
    a trial after epoch 1 Train may already have dropped epoch 1's checkpoint for a better
    epoch 2 that Tune never accepts. The driver logs the best accepted epoch's generator from
    here and removes the others (`TrialRecorder`, `StudyTracker.settle`).
    """
    return f"{trial_generators_uri(study_dir, trial_id)}/epoch_{epoch:04d}"


def trial_generators_uri(study_dir: str, trial_id: str) -> str:
    return f"{study_dir.rstrip('/')}/generators/{trial_id}"


def put_generator(checkpoint_dir: str, uri: str) -> None:
    for name in (GENERATOR_FILE, CONFIG_FILE):
        put_file(str(Path(checkpoint_dir) / name), f"{uri}/{name}")


def remove(uri: str) -> None:
    """Delete a folder in storage (nothing when it is not there)."""
    filesystem, path = pafs.FileSystem.from_uri(uri)
    if filesystem.get_file_info(path).type == pafs.FileType.Directory:
        filesystem.delete_dir(path)


def get_grid(uri: str):
    """The grid at `uri` as a PIL image, or None where that epoch has none (a diverged epoch)."""
    from PIL import Image

    filesystem, path = pafs.FileSystem.from_uri(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as src:
        image = Image.open(io.BytesIO(src.read()))
        image.load()
    return image


# ----------------------------------------------------------------------------- the callback


def trial_label(spec: StudySpec, sampled: dict[str, Any], seed: int) -> str:
    """The searched values as the MLflow UI lists a child run: `family=lsgan, beta=0.0123`."""
    label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                      for k, v in sampled.items())
    if spec.repeats > 1:
        label += f", seed={seed}"
    return label


def trainer_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """A Tune result less what Tune added: the metrics the trainer reported for one epoch."""
    return {k: v for k, v in result.items() if k not in TUNE_KEYS}


class TrialRecorder(Callback):
    """Writes every accepted trial result (metrics and the epoch's grid) to the trial's child run."""

    def __init__(self, spec: StudySpec, settings: dict[str, Any], study_dir: str):
        self.spec = spec
        self.settings = settings  # StudyTracker.worker_settings: store, experiment, parent run
        self.study_dir = study_dir
        self.trackers: dict[str, TrialTracker] = {}
        self.generators: dict[str, dict[int, float]] = {}  # trial id -> accepted epoch -> score (higher better)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the study's state
        return {**self.__dict__, "trackers": {}, "generators": {}}

    def tracker(self, trial) -> TrialTracker:
        """The trial's child run: created on first sight, or found again by its trial-id tag."""
        if trial.trial_id not in self.trackers:
            sampled = {k: v for k, v in trial.config.items() if k in searched_keys(self.spec)}
            repeat = int(trial.config.get(TRIAL_INDEX, 0))
            cfg = trial_config(self.spec, sampled, repeat)
            name = f"{trial.trial_id} {trial_label(self.spec, sampled, cfg.seed)}".strip()
            tracker = TrialTracker(**self.settings, trial_id=trial.trial_id, trial_name=name, sampled=sampled,
                                   repeat=repeat)
            tracker.start(cfg)
            self.trackers[trial.trial_id] = tracker
        return self.trackers[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.tracker(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        if "epoch" not in result:
            return
        tracker = self.tracker(trial)
        epoch = int(result["epoch"])
        if "pbt_exploit" in result:  # the first result after PBT copied a donor into this trial
            from study.pbt import record_exploit

            record_exploit(tracker.client, tracker.run_id, result)
        if result.get("checkpoint_path"):
            self.keep_best_generator(trial.trial_id, epoch, result)
        if tracker.has_epoch(epoch):  # a restarted trial re-reporting an epoch the run already holds
            return
        tracker.log_epoch(trainer_metrics(result), get_grid(grid_uri(self.study_dir, trial.trial_id, epoch)))

    def keep_best_generator(self, trial_id: str, epoch: int, result: dict) -> None:
        """Of the accepted epochs' generator copies, keep the best one (by the first objective; the
        earlier epoch on ties, as results.best_row picks) and remove the rest."""
        metric, mode = self.spec.objective.metrics[0], self.spec.objective.modes[0]
        value = float(result.get(metric, math.nan))
        seen = self.generators.setdefault(trial_id, {})
        seen[epoch] = -math.inf if math.isnan(value) else (value if mode == "max" else -value)
        best = max(seen, key=lambda e: (seen[e], -e))
        for old in [e for e in seen if e != best]:
            del seen[old]
            remove(generator_uri(self.study_dir, trial_id, old))

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.tracker(trial).finish("failed")  # the study's table settles the reason at the end
