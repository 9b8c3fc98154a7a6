"""Population-based training through nested Ray Train trials: scheduler, checkpoint forwarding, exploits.

Tune's PBT copies a donor's checkpoint into a losing trial only if the trial reported that
checkpoint to Tune. Under Train V2 a trial driver fits a TorchTrainer, and Ray's
`TuneReportCallback` forwards a worker's metrics and only the *path* of its checkpoint
(`result.checkpoint` stays None), so PBT would find nothing to copy. Here the driver runs
the fit as every trial does (`study.forwarding`): `ForwardReports`, a Train callback on the Train
controller, passes each report and its persisted checkpoint through a small relay actor, and the driver
reports both with `tune.report(metrics, checkpoint=...)`.

After an exploit (or a pause, or a restarted study) Tune starts the trial again with
`tune.get_checkpoint()` set and the mutated config. The driver then fits a fresh Train run
(`train-<trial id>-<n>`), never its own older one, and hands the checkpoint to the workers
through the loop config: Ray 2.60 refuses `TorchTrainer(resume_from_checkpoint=...)`
(DeprecationWarning: "`resume_from_checkpoint` is deprecated"), so a worker takes
`ray.train.get_checkpoint()` (its own run's latest, after a worker restart) or else this one.

Records: rank 0 writes `srstudy_origin.json` (trial id, epoch, values in force) into every
checkpoint, so a restarted driver knows whose state it got; the first result after an
exploit carries `pbt_exploit` (JSON), which the study's MLflow recorder turns into an event
on the child run (`pbt_events.jsonl`, tags `srstudy.pbt_*`). Every result carries the values
in force as `hp/<key>`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune
from ray.train import Checkpoint
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from study.forwarding import Relay, fit_forwarding
from study.space import Param
from study.spec import TIME_ATTR, StudySpec
from trainables.config import TrialConfig

ORIGIN_FILE = "srstudy_origin.json"  # in every checkpoint of a PBT trial
EXPLOIT_KEY = "pbt_exploit"  # result field (JSON text) of the first result after an exploit
EVENTS_ARTIFACT = "pbt_events.jsonl"
HP_PREFIX = "hp/"


# ----------------------------------------------------------------------------- Tune side


def tune_domain(p: Param) -> Any:
    """A space or mutation param as Tune samples it (a list for a choice: PBT then steps to a neighbour).

    An int range is its list of values (Tune's `qrandint` leaves out `high` when q is 1 and
    rounds to multiples of q, not to low + k * step); a log int range is `lograndint`.
    """
    if p.discrete:
        return list(p.values)
    if p.type == "int":
        return tune.lograndint(p.low, p.high + 1) if p.log else list(range(p.low, p.high + 1, p.step))
    return tune.loguniform(p.low, p.high) if p.type == "loguniform" else tune.uniform(p.low, p.high)


def param_space(spec: StudySpec) -> dict[str, Any]:
    """The initial population's space; mutated keys outside it are drawn by PBT from their mutation.

    Here a list must become `tune.choice` (in a param space a bare list is one constant value).
    """
    domains = {k: tune_domain(p) for k, p in spec.space.items()}
    return {k: tune.choice(d) if isinstance(d, list) else d for k, d in domains.items()}


class LastEpochPBT(PopulationBasedTraining):
    """PBT that makes no decision on a trial's last epoch: nothing is left to train with a copied
    state, and in synchronous mode the decision would pause and restart every trial for nothing."""

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:
        if result.get("status") in ("completed", "diverged"):
            return TrialScheduler.CONTINUE
        state = self._trial_state.get(trial)
        before = state.last_perturbation_time if state is not None else None
        decision = super().on_trial_result(tune_controller, trial, result)
        # A restored study restarts this scheduler's clock while its trials come back at their
        # checkpoints' epochs; a decision then sets the next one no later than the epoch it was
        # taken at, and every paused trial waits for a decision that never comes (measured: a
        # killed study's --resume hung with all trials PAUSED). The next decision is after this one.
        time = result.get(self._time_attr)
        decided = state is not None and before != time and state.last_perturbation_time == time
        if self._synch and decided and self._next_perturbation_sync <= time:
            self._next_perturbation_sync = time + self._perturbation_interval
        return decision


def make_scheduler(spec: StudySpec) -> LastEpochPBT:
    """Synchronous PBT: a decision waits until every trial reached it, so a loser always copies a
    donor's checkpoint of the same epoch (its records continue with no gap and no repeat)."""
    p = spec.scheduler.pbt
    return LastEpochPBT(
        time_attr=TIME_ATTR, metric=spec.objective.metric, mode=spec.objective.mode,
        perturbation_interval=p.perturbation_interval, burn_in_period=p.burn_in,
        hyperparam_mutations={k: tune_domain(m) for k, m in p.mutations.items()},
        quantile_fraction=p.quantile_fraction, resample_probability=p.resample_probability, synch=True)


def search_alg(spec: StudySpec):
    """The initial population, drawn at random with the searcher's seed (PBT takes no Optuna)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=spec.searcher.seed)


def checkpoint_config(spec: StudySpec) -> tune.CheckpointConfig:
    """Keep enough Tune checkpoints that a donor's stays until every loser has copied it: a donor
    may run one interval ahead before a paused loser gets a slot."""
    return tune.CheckpointConfig(num_to_keep=max(4, spec.scheduler.pbt.perturbation_interval + 3))


# ----------------------------------------------------------------------------- workers


def hp_metrics(cfg: TrialConfig, keys: list[str]) -> dict[str, float]:
    """The mutated values in force, as metrics (`hp/optim.lr_g`): MLflow params are write-once."""
    flat = cfg.flat()
    return {f"{HP_PREFIX}{k}": float(flat[k]) for k in keys}


def write_origin(ckpt_dir: str, trial_id: str, epoch: int, hp: dict[str, float]) -> None:
    Path(ckpt_dir, ORIGIN_FILE).write_text(json.dumps({"trial_id": trial_id, "epoch": epoch, "hp": hp}))


# ----------------------------------------------------------------------------- the trial driver


@dataclass
class PBTRun:
    """One fit of a PBT trial: a fresh Train run, the checkpoint it starts from, the exploit it follows."""

    run_name: str
    start_from: Checkpoint | None
    exploit: dict[str, Any] | None
    relay: Any = field(repr=False)  # study.forwarding.Relay

    def loop_config(self, trial_id: str, keys: list[str]) -> dict[str, Any]:
        return {"pbt": {"trial_id": trial_id, "keys": keys, "start_from": self.start_from}}

    def fit(self, trainer) -> None:
        """Fit; report each forwarded epoch to Tune with its checkpoint (Tune's PBT restores from it)."""
        exploit = self.exploit

        def report(metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
            nonlocal exploit
            if exploit is not None:
                metrics[EXPLOIT_KEY] = json.dumps(exploit)
                exploit = None
            tune.report(metrics, checkpoint=checkpoint)

        fit_forwarding(trainer, self.relay, report)


def _next_run_index(train_storage: str, trial_id: str) -> int:
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(train_storage) if "://" in train_storage else \
            (pafs.LocalFileSystem(), train_storage)
        infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, ValueError):
        return 0
    prefix = f"train-{trial_id}-"
    used = [int(i.base_name[len(prefix):]) for i in infos
            if i.base_name.startswith(prefix) and i.base_name[len(prefix):].isdigit()]
    return max(used, default=-1) + 1


def prepare(trial_id: str, train_storage: str) -> PBTRun:
    """The fit this trial driver starts now: from Tune's checkpoint, if any, under a fresh Train run."""
    start = tune.get_checkpoint()
    exploit = None
    if start is not None:
        with start.as_directory() as folder:
            origin_file = Path(folder, ORIGIN_FILE)
            origin = json.loads(origin_file.read_text()) if origin_file.is_file() else {}
        if origin.get("trial_id") not in (None, trial_id):
            donor_hp = {k[len(HP_PREFIX):]: v for k, v in origin.get("hp", {}).items()}
            exploit = {"donor": origin["trial_id"], "epoch": int(origin["epoch"]), "donor_hp": donor_hp}
    index = _next_run_index(train_storage, trial_id)
    return PBTRun(run_name=f"train-{trial_id}-{index}", start_from=start, exploit=exploit, relay=Relay.remote())


# ----------------------------------------------------------------------------- records (study driver)


def record_exploit(client, run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Append the exploit a result announces to the child run: `pbt_events.jsonl` and `srstudy.pbt_*` tags.

    Old values are the run's latest `hp/*` metrics (its own epochs before the exploit); new
    values are this result's. Returns the event.
    """
    info = json.loads(result[EXPLOIT_KEY])
    latest = client.get_run(run_id).data.metrics
    new = {k[len(HP_PREFIX):]: v for k, v in result.items() if k.startswith(HP_PREFIX)}
    event = {"epoch": info["epoch"], "donor": info["donor"],
             "old": {k: latest.get(HP_PREFIX + k) for k in new}, "new": new, "donor_hp": info["donor_hp"]}
    events = read_events(client, run_id) + [event]
    client.log_text(run_id, "".join(json.dumps(e) + "\n" for e in events), EVENTS_ARTIFACT)
    client.set_tag(run_id, "srstudy.pbt_exploits", str(len(events)))
    client.set_tag(run_id, "srstudy.pbt_donors", ",".join(f"{e['donor']}@{e['epoch']}" for e in events))
    return event


def read_events(client, run_id: str) -> list[dict[str, Any]]:
    """A child run's exploit events, oldest first (empty when it has none)."""
    if not any(a.path == EVENTS_ARTIFACT for a in client.list_artifacts(run_id)):
        return []
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="srstudy-pbt-") as tmp:
        local = client.download_artifacts(run_id, EVENTS_ARTIFACT, tmp)
        return [json.loads(line) for line in Path(local).read_text().splitlines() if line.strip()]
