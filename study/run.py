"""`python -m study.run SPEC.yaml`: run a hyperparameter study of SR GANs on Ray Tune + Optuna.

Prints the resolved spec and the trial plan, runs the trials (each on Ray Train workers),
shows progress, and ends with a table of trials sorted by the objective, the bicubic
reference, and where to look next. `--resume` continues an interrupted study.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from study.spec import DEFAULT_STORAGE, StudySpec, load_spec, plan, spec_hash, with_base_overrides
from trainables.config import parse_set_args
from trainables.errors import UserError

PARENT_FILE = "mlflow_parent_run.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="study spec YAML, e.g. search_spaces/loss_family.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial-config key for every trial, e.g. --set schedule.gan_epochs=4")
    p.add_argument("--trials", type=int, default=None, help="number of configurations to try")
    p.add_argument("--name", default=None, help="study name (MLflow experiment and results folder)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study of the same name")
    p.add_argument("--dry-run", action="store_true", help="print the resolved spec and plan, then stop")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--storage", default=None, help="results and checkpoints: a path or a URI such as s3://bucket/x")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    return p


def resolve_spec(args: argparse.Namespace) -> StudySpec:
    top = {}
    if args.trials is not None:
        top["trials"] = args.trials
    if args.name is not None:
        top["name"] = args.name
    if args.storage is not None:
        top["storage"] = args.storage
    if args.tracking_uri is not None:
        top["tracking_uri"] = args.tracking_uri
    spec = load_spec(args.spec, top)
    if args.overrides:
        spec = with_base_overrides(spec, parse_set_args(args.overrides))
    return spec


def storage_root(spec: StudySpec) -> str:
    """Absolute local path (Ray needs one) or the URI as given."""
    raw = spec.storage or DEFAULT_STORAGE
    if "://" in raw:
        return raw
    return str(Path(raw).expanduser().resolve())


def _local(storage: str) -> Path | None:
    return None if "://" in storage else Path(storage)


def run(args: argparse.Namespace) -> int:
    spec = resolve_spec(args)
    storage = storage_root(spec)
    print("resolved study spec:")
    print(spec.dump_yaml())
    print("\n".join(plan(spec)))
    if args.dry_run:
        print("\n--dry-run: nothing started")
        return 0

    local = _local(storage)
    study_dir = local / spec.name if local is not None else None
    exists = study_dir is not None and (study_dir / "tuner.pkl").exists()
    if exists and not args.resume:
        raise UserError(f"study {spec.name!r} already has results in {study_dir}; pass --resume to continue it "
                        f"or --name NEW to start another")
    if args.resume and study_dir is not None and not exists:
        raise UserError(f"--resume: no study {spec.name!r} under {storage} to continue; run without --resume to start it")

    from study import runner
    from study.results import _best_row, format_table, summarize  # noqa: F401 (before the cwd may go)
    from study.tracking import StudyTracker, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, spec.tracking_uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # trials inherit it through the runtime env
    driver_cpus = runner.start_ray(args.address)
    concurrency = runner.plan_concurrency(spec, driver_cpus)
    runner.check_storage(storage)
    print(f"\nRay: {runner.ray.cluster_resources().get('CPU', 0) - driver_cpus:g} CPUs, "
          f"{runner.ray.cluster_resources().get('GPU', 0):g} GPUs; up to {concurrency} trial(s) at once")

    digest = spec_hash(spec)
    tracker = StudyTracker(uri, spec.name)
    parent_file = study_dir / PARENT_FILE if study_dir is not None else None
    previous = None
    if args.resume and parent_file is not None and parent_file.is_file():
        previous = json.loads(parent_file.read_text()).get("run_id")
    parent = tracker.start(spec.dump_yaml(), plan(spec), digest, spec.description, resume_run_id=previous)
    if parent_file is not None:
        parent_file.parent.mkdir(parents=True, exist_ok=True)
        parent_file.write_text(json.dumps({"run_id": parent, "experiment_id": tracker.experiment_id}))
    print(f"MLflow: experiment {spec.name!r} (id {tracker.experiment_id}), parent run {parent} at {uri}\n")

    tracking = tracker.worker_settings(digest)
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        # under `ray job submit` the driver runs inside the uploaded working dir, which Ray
        # may garbage-collect when the trials' workers release it; every path is resolved
        # by now, so leave it for a folder that stays
        os.chdir(study_dir if study_dir is not None else tempfile.gettempdir())
    start = time.monotonic()
    try:
        if args.resume:
            tuner = runner.restore_tuner(spec, storage, tracking)
        else:
            tuner = runner.build_tuner(spec, storage, tracking, concurrency)
        results = tuner.fit()
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        print(f"\ninterrupted: continue with  python -m study.run {args.spec} --resume"
              + (f" --name {spec.name}" if args.name else ""), file=sys.stderr)
        return 130
    except BaseException:
        tracker.finish("FAILED")
        raise
    wall = time.monotonic() - start

    table = summarize(spec, results)
    best = _best_checkpoints(results, spec)
    tracker.settle(table, best)
    text = format_table(spec, table)
    out_parquet = None
    if study_dir is not None:
        out_parquet = str(study_dir / "results.parquet")
        table.to_parquet(out_parquet, index=False)
        (study_dir / "results.md").write_text(text + "\n")
    tracker.finish("FINISHED", text, out_parquet)

    counts = table["status"].value_counts().to_dict() if not table.empty else {}
    print(f"\nstudy {spec.name}: {len(table)} trials in {wall / 60:.1f} min "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())})\n")
    print(text)
    print("\nnext:")
    if out_parquet:
        print(f"  results table   {out_parquet}")
    default_store = uri == f"sqlite:///{Path('mlflow.db').resolve()}"
    ui = "mlflow ui" if default_store else f"mlflow ui --backend-store-uri {uri}"
    if uri.startswith("http"):
        ui, base = "(served)", uri.rstrip("/")
    else:
        base = "http://127.0.0.1:5000"
    print(f"  MLflow UI       {ui}   then {base}/#/experiments/{tracker.experiment_id}/runs?workflowType=machine_learning")
    print(f"  paper tables    python -m reports.build {spec.name}" + (f" --tracking-uri {uri}" if args.tracking_uri else ""))
    return 0


def _best_checkpoints(results, spec: StudySpec) -> dict[str, str | None]:
    """trial id -> checkpoint path of its best epoch (by the first objective), where one exists."""
    from study.results import _best_row

    metric, mode = spec.objective.metrics[0], spec.objective.modes[0]
    out: dict[str, str | None] = {}
    for result in results:
        history = result.metrics_dataframe
        trial_id = (result.metrics or {}).get("trial_id")
        if history is None or trial_id is None or "checkpoint_path" not in history:
            continue
        with_ckpt = history[history["checkpoint_path"].notna()]
        row = _best_row(with_ckpt, metric, mode)
        out[trial_id] = None if row is None else row["checkpoint_path"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlflow.exceptions import MlflowException

    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:  # a Ray address nothing answers at
        print(f"error: Ray cluster {args.address or os.environ.get('RAY_ADDRESS')}: {str(exc).splitlines()[0][:200]}",
              file=sys.stderr)
        return 2
    except MlflowException as exc:  # an unreachable tracking server or a bad URI
        print(f"error: MLflow: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
