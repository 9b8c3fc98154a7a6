"""`python -m study.run SPEC.yaml`: run a hyperparameter study of SR GANs on Ray Tune + Optuna.

Prints the resolved spec and the trial plan, runs the trials (each on Ray Train workers),
shows progress, and ends with a table of trials sorted by the objective, the bicubic
reference, and where to look next. `--resume` continues an interrupted study.

Exit codes: 0 the study ran to its end; 2 bad input (one line on stderr, checked before
Ray starts or MLflow writes anything); 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM:
the table then lists unfinished trials as `interrupted`, the MLflow parent run is KILLED,
and the command that resumes the study is printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from study.plan import plan
from study.spec import DEFAULT_STORAGE, StudySpec, load_spec, spec_hash, with_base_overrides
from trainables.yamlio import parse_set_args
from trainables.errors import (ArgumentParser, UserError, check_tracking_uri, check_writable_dir, first_line,
                               one_line_errors, sqlite_path)

# set by Ray's job supervisor in the environment of a `ray job submit` entrypoint
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="study spec YAML, e.g. search_spaces/loss_family.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial-config key for every trial, e.g. --set schedule.gan_epochs=4")
    p.add_argument("--trials", type=int, default=None, help="number of configurations to try")
    p.add_argument("--name", default=None, help="study name (MLflow experiment and results folder)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study of the same name")
    p.add_argument("--dry-run", action="store_true", help="print the resolved spec and plan, then stop")
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="the size to run at: laptop (default: the spec as written) or paper, a YAML file in "
                        "search_spaces/profiles/, or a path; it overrides the spec's base, not searched keys or --set")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--storage", default=None, help="results and checkpoints: a path or a URI such as s3://bucket/x")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    return p


def resolve_spec(args: argparse.Namespace) -> StudySpec:
    given = {"trials": args.trials, "name": args.name, "storage": args.storage, "tracking_uri": args.tracking_uri}
    top = {key: value for key, value in given.items() if value is not None}
    spec = load_spec(args.spec, top, profile=args.profile)
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


def job_storage_problem(environ: Mapping[str, str], storage: str | None, tracking_uri: str | None,
                        cwd: Path) -> str | None:
    """Why a study under `ray job submit` would lose its results, or None when they are durable.

    A job's driver runs in Ray's temporary copy of the working dir, which goes with the
    cluster's session: the default `./study_results` and `sqlite:///mlflow.db` (and any
    relative path) would land there. `storage` and `tracking_uri` are what the user gave
    (flag, spec or MLFLOW_TRACKING_URI), not the defaults.
    """
    if not environ.get(RAY_JOB_ENV):
        return None
    fix = ("pass --storage on shared storage (an NFS path or s3://bucket/studies) and --tracking-uri "
           "http://MLFLOW_HOST:5000")
    if storage is None or tracking_uri is None:
        missing = " and ".join(n for n, v in (("--storage", storage), ("--tracking-uri", tracking_uri)) if v is None)
        return f"under `ray job submit` without {missing}, results would go to the job's temporary working dir; {fix}"
    db = sqlite_path(tracking_uri)
    for flag, local in (("--storage", _local(storage)), ("--tracking-uri", db)):
        if local is not None and (not local.is_absolute() or cwd in local.resolve().parents):
            return f"{flag} {local}: inside the job's temporary working dir {cwd}, which Ray deletes; {fix}"
    return None


class Interruption:
    """Ctrl-C (SIGINT) or SIGTERM during a study: remember it, let Tune stop and save its state.

    Tune's own SIGINT handler swallows the signal and returns from `fit()` as if the study
    had ended; this one records which signal came and hands over to Tune's graceful stop
    (its SIGUSR1 handler, installed by `fit`). A second signal stops at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours stays in place during fit()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        from study.progress import INTERRUPTED

        first = self.signum is None
        self.signum = self.signum or signum
        INTERRUPTED.set()
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if not first or not callable(tune_stop):  # a second signal, or Tune is not running yet
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: stopping the study (Tune saves its state; "
              "send it again to stop at once)", file=sys.stderr, flush=True)
        tune_stop(signum, frame)

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM: 128 + the signal number, as shells report it."""
        return 128 + (self.signum or signal.SIGINT)


def resume_command(argv: list[str]) -> str:
    """The command that continues this study: the same arguments, plus --resume."""
    return shlex.join(["python", "-m", "study.run", *[a for a in argv if a != "--resume"], "--resume"])


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    spec = resolve_spec(args)
    storage = storage_root(spec)
    print("resolved study spec:")
    print(spec.dump_yaml())
    print("\n".join(plan(spec)))
    if args.dry_run:
        print("\n--dry-run: nothing started")
        return 0

    import ray
    from ray.tune import Tuner

    from study import runner
    from study.recorder import generator_uri, remove, trial_generators_uri
    from study.results import best_epochs, format_table, snapshot_states, summarize  # before the cwd may go
    from study.tracking import StudyTracker, resolve_tracking_uri

    # everything a user can get wrong is checked here, before Ray starts or MLflow writes anything
    given_uri = args.tracking_uri or spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    problem = job_storage_problem(os.environ, spec.storage, given_uri, Path.cwd())
    if problem:
        raise UserError(problem)
    uri = resolve_tracking_uri(args.tracking_uri, spec.tracking_uri)
    local = _local(storage)
    if local is not None:
        check_writable_dir(local, "--storage" if args.storage else "storage")
    check_tracking_uri(uri, "--tracking-uri" if args.tracking_uri else "tracking_uri", must_exist=False)
    study_dir = local / spec.name if local is not None else None
    exists = study_dir is not None and Tuner.can_restore(study_dir)
    if exists and not args.resume:
        raise UserError(f"study {spec.name!r} already has results in {study_dir}; pass --resume to continue it "
                        f"or --name NEW to start another")
    if args.resume and study_dir is not None and not exists:
        raise UserError(f"--resume: no study {spec.name!r} under {storage} to continue; run without --resume to start it")
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address is None:  # a local Ray: the machine's size is known without starting it
        runner.check_fits_locally(spec)
    else:
        runner.check_reachable(address, "--address" if args.address else "RAY_ADDRESS")

    stop = Interruption()
    stop.install()
    os.environ["MLFLOW_TRACKING_URI"] = uri  # trials inherit it through the runtime env
    tracker = None
    try:
        driver_cpus = runner.start_ray(args.address)
        stop.install()  # again: ray.init may have installed its own handlers
        concurrency = runner.plan_concurrency(spec, driver_cpus)
        runner.check_storage(storage)
        print(f"\nRay: {ray.cluster_resources().get('CPU', 0) - driver_cpus:g} CPUs, "
              f"{ray.cluster_resources().get('GPU', 0):g} GPUs; up to {concurrency} trial(s) at once")

        digest = spec_hash(spec)
        tracker = StudyTracker(uri, spec.name)
        previous = tracker.find_parent(digest) if args.resume else None
        if args.resume and previous is None:
            print("note: no MLflow parent run of this spec in this tracking store; starting a new one", file=sys.stderr)
        parent = tracker.start(spec.dump_yaml(), plan(spec), digest, spec.description, resume_run_id=previous)
        print(f"MLflow: experiment {spec.name!r} (id {tracker.experiment_id}), parent run {parent} at {uri}\n")

        tracking = tracker.worker_settings(digest)
        if os.environ.get(RAY_JOB_ENV):
            # under `ray job submit` the driver runs inside the uploaded working dir, which Ray
            # may garbage-collect when the trials' workers release it; every path is resolved
            # by now, so leave it for a folder that stays
            os.chdir(study_dir if study_dir is not None and study_dir.is_dir() else tempfile.gettempdir())
        start = time.monotonic()
        if args.resume:
            tuner = runner.restore_tuner(spec, storage, tracking)
        else:
            tuner = runner.build_tuner(spec, storage, tracking, concurrency)
        results = tuner.fit()
    except KeyboardInterrupt:  # a second signal, or one before Tune ran: no table to settle
        if tracker is not None:
            tracker.finish("KILLED")
        print(f"\ninterrupted: continue with  {resume_command(argv)}", file=sys.stderr)
        return stop.exit_code
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    wall = time.monotonic() - start

    interrupted = stop.signum is not None
    table = summarize(spec, results, snapshot_states(results) if interrupted else None)
    study_uri = runner.study_path(spec, storage)
    logged = tracker.settle(table, {t: generator_uri(study_uri, t, e) for t, e in best_epochs(results, spec).items()})
    for row in table.to_dict("records"):  # the study's generator copies of trials that will not run again
        if row["trial_id"] in logged and row["status"] in ("completed", "stopped early", "diverged"):
            remove(trial_generators_uri(study_uri, row["trial_id"]))
    text = format_table(spec, table)
    out_parquet = None
    if study_dir is not None:
        out_parquet = str(study_dir / "results.parquet")
        table.to_parquet(out_parquet, index=False)
        (study_dir / "results.md").write_text(text + "\n")
    tracker.finish("KILLED" if interrupted else "FINISHED", text, out_parquet)

    counts = table["status"].value_counts().to_dict() if not table.empty else {}
    print(f"\nstudy {spec.name}: {len(table)} trials in {wall / 60:.1f} min "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())})"
          + (f" INTERRUPTED, {spec.total_trials - len(table)} planned trial(s) not started" if interrupted else "")
          + "\n")
    print(text)
    if interrupted:
        print(f"\ninterrupted by {signal.Signals(stop.signum).name}: parent run {tracker.parent_run_id} is KILLED; "
              f"continue with  {resume_command(argv)}", file=sys.stderr)
        return stop.exit_code
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlflow.exceptions import MlflowException

    address = args.address or os.environ.get("RAY_ADDRESS")
    return one_line_errors(lambda: run(args, argv),
                           (ConnectionError, lambda e: f"Ray cluster {address}: {first_line(e)}"),  # nothing answers
                           (MlflowException, lambda e: f"MLflow: {first_line(e)}"))  # unreachable server, bad URI


if __name__ == "__main__":
    raise SystemExit(main())
