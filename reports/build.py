"""`python -m reports.build STUDY`: a finished study in MLflow -> paper-style tables, figures and a report.

Writes report.md, a self-contained report.html, tables.tex (booktabs), trials.csv and
trials.parquet (every trial x epoch), groups.csv (the main table's numbers) and
figures/*.png to `reports_out/<study>/`, prints the main table, and logs the folder to
the study's parent run under `report/` (skip with --no-log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: reports run on headless machines

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from reports import benchmark_table, figures, schedule, tables, verdicts  # noqa: E402
from reports.document import Doc, Table, md_table, to_latex  # noqa: E402
from reports.importance import param_importances  # noqa: E402
from reports.load import Study, download_grid, load_study, resolve_tracking_uri  # noqa: E402
from study.spec import StudySpec  # noqa: E402
from trainables.errors import (ArgumentParser, UserError, check_tracking_uri, check_writable_dir,  # noqa: E402
                               first_line, one_line_errors)

TOP = 8  # groups shown in the sample-grid figure and coloured in the curves


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m reports.build", description=__doc__.splitlines()[0])
    p.add_argument("study", help="study name (its MLflow experiment)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    p.add_argument("--out", default=None, help="output folder (default: reports_out/<study>/)")
    p.add_argument("--parent-run-id", default=None, help="which parent run, when the experiment holds several")
    p.add_argument("--bins", type=int, default=None,
                   help="group continuous params into this many bins over their range (default: by value)")
    p.add_argument("--top", type=int, default=TOP, help=f"groups in the sample-grid figure (default {TOP})")
    p.add_argument("--no-log", action="store_true", help="do not log the report to the study's parent run")
    return p


@dataclass
class Built:
    """What `write_report` produced, for printing and logging."""

    out: Path
    main_md: str
    files: list[Path] = field(default_factory=list)


def _grid_items(study: Study, best: pd.DataFrame, groups: pd.DataFrame, top: int, metric: str) -> list:
    """(title, image) per top group: its best trial's sample grid at its best epoch, from MLflow."""
    from PIL import Image

    items = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, g in groups.head(top).iterrows():
            trial = best[best["run_id"] == g["best_run_id"]].iloc[0]
            if not isinstance(trial["grid_artifact"], str):  # no grid logged (NaN after a merge)
                continue
            path = download_grid(study.tracking_uri, trial["run_id"], trial["grid_artifact"],
                                 Path(tmp) / trial["run_id"])
            value = tables.fmt_metric(metric, trial[metric]) if metric in trial else tables.MISSING
            shown = (f"at epoch {int(trial['best_epoch'])}" if trial["grid_epoch"] == trial["best_epoch"]
                     else f"at epoch {int(trial['best_epoch'])}; grid of epoch {int(trial['grid_epoch'])}")
            title = (f"{g['rank']}. {g['group']}\n{tables.LABELS.get(metric, metric)}: {value} {shown}\n"
                     f"trial {trial['trial_id']}, seed {trial['seed']}")
            items.append((title, np.asarray(Image.open(path).convert("RGB"))))
    return items


def long_frame(best: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Every trial x epoch: the trial's own columns, then that epoch's metrics (trials.csv/.parquet)."""
    # history's columns win a name clash (its `best_epoch` is the trainer's running metric)
    own = [c for c in best.columns
           if (c not in history.columns or c == "trial_id") and c not in ("run_id", "grid_artifact", "grid_epoch")]
    frame = best[["run_id", *own]].merge(history.drop(columns=["trial_id"]), on="run_id", how="left")
    best_epoch = frame["run_id"].map(best.set_index("run_id")["best_epoch"])
    frame.insert(frame.columns.get_loc("epoch") + 1, "is_best_epoch", (frame["epoch"] == best_epoch).fillna(False))
    return frame


def _write_frames(out: Path, frame: pd.DataFrame, groups: pd.DataFrame) -> list[Path]:
    paths = [out / "trials.csv", out / "trials.parquet", out / "groups.csv"]
    # a list reads back from JSON, not from repr
    frame.assign(searched=frame["searched"].map(json.dumps)).to_csv(paths[0], index=False)
    parquet = frame.copy()
    for col in parquet.columns:  # pyarrow rejects object columns mixing types (e.g. 0 and "x")
        if parquet[col].dtype == object and col != "searched":
            kinds = {type(v) for v in parquet[col] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if len(kinds) > 1:
                parquet[col] = parquet[col].map(lambda v: None if v is None else str(v))
    parquet.to_parquet(paths[1], engine="pyarrow", index=False)
    groups.to_csv(paths[2], index=False)
    return paths


def _setup_section(doc: Doc, study: Study) -> None:
    spec = study.spec
    doc.heading("Setup")
    objs = tables.objectives(spec)
    goals = ", ".join(f"{'maximise' if m == 'max' else 'minimise'} `{n}`" for n, m in objs)
    doc.bullets([f"objective: {goals}" + (" (Pareto front)" if len(objs) > 1 else ""),
                 f"MLflow: experiment `{study.name}` (id {study.experiment_id}), "
                 f"parent run `{study.parent['run_id']}`, `{study.tracking_uri}`"])
    if spec.space:
        rows = []
        for key, p in spec.space.items():
            values = (", ".join(tables.fmt_param(v) for v in p.values) if p.discrete
                      else f"[{tables.fmt_param(p.low)}, {tables.fmt_param(p.high)}]"
                      + (" log" if p.type == "loguniform" or p.log else ""))
            rows.append([f"`{key}`", p.type, values])
        doc.table(Table(["searched key", "type", "values / range"], rows, caption="The search space.", text_cols=3))
    if study.plan:
        doc.para("The plan the study printed at its start (searcher, scheduler, fixed settings, resources):")
        doc.code("\n".join(study.plan))
    elif spec.base:
        doc.para("Fixed settings (`base`, on top of the trial-config defaults):")
        doc.code("\n".join(f"{k}: {v}" for k, v in spec.base.items()))


def _main_caption(spec: StudySpec, groups: pd.DataFrame, bins: int | None) -> str:
    objs = tables.objectives(spec)
    metric, mode = objs[0]
    spread = "mean ± sample std (ddof=1) over a group's seeds" if (groups["n"] > 1).any() else "one trial per group"
    grouping = "by each trial's own value" if not bins else f"in {bins} bins over the spec's range"
    return (f"Validation patches (the set each trial's epoch is selected on, so the selected epoch's score is "
            f"optimistic; test-set scores are above). Groups of trials with equal searched settings (continuous "
            f"settings {grouping}), ranked by mean `{metric}` ({'higher' if mode == 'max' else 'lower'} is better); "
            f"metrics at each trial's best epoch (its best `{metric}`), {spread}. HF ratio: high-frequency energy of "
            "SR over HR (1 = HR's detail). "
            "Diverged and stopped early: trials out of n. D(real)−D(fake): discriminator outputs at the last GAN "
            "epoch. Bold: best group per column."
            + (" Pareto: no other group's means are at least as good on every objective and better on one."
               if len(objs) > 1 else "")
            + (" Population-based training: a trial's searched values are its initial draw; exploits replace them "
               "mid-run (the schedule section shows the values in force)." if schedule.is_pbt(spec) else ""))


def _figures_section(doc: Doc, study: Study, best: pd.DataFrame, groups: pd.DataFrame, bicubic: pd.DataFrame,
                     keys: list[str], fig_dir: Path, top: int) -> list[Path]:
    """Every figure as a PNG under fig_dir, each with its caption in `doc`; returns the files."""
    spec, history = study.spec, study.history
    objs = tables.objectives(spec)
    written: list[Path] = []
    doc.heading("Figures")
    items = _grid_items(study, best, groups, top, objs[0][0])
    if items:
        written.append(figures.save(figures.sample_grids(items), fig_dir / "samples.png"))
        more = f" (top {top} of {len(groups)} groups)" if len(groups) > top else ""
        doc.image("figures/samples.png", f"Sample grids of each group's best trial at its best epoch{more}: "
                                         "rows SR, bicubic, LR (nearest), HR; one column per validation patch.")
    else:
        doc.para("No sample grids were logged for these trials.")
    order = groups["group"].tolist()
    one_ref = len(bicubic) == 1  # with several validation settings one bicubic line would mislead
    ref_psnr = float(bicubic["val_psnr_mean"].iloc[0]) if one_ref and "val_psnr_mean" in bicubic else None
    written.append(figures.save(figures.curves(best, history, "val_psnr", order, ref_psnr,
                                               "Validation PSNR per epoch (mean over seeds)", top=top),
                                fig_dir / "psnr_per_epoch.png"))
    doc.image("figures/psnr_per_epoch.png", "Validation PSNR per epoch, one line per group (mean over the seeds "
                                            "that reached the epoch; band: ± sample std); dashed: bicubic; "
                                            "shaded: MSE pretraining epochs.")
    ref_mse = float(best["bicubic_mse"].mean()) if one_ref and "bicubic_mse" in best else None
    written.append(figures.save(figures.curves(best, history, "val_mse", order, ref_mse,
                                               "Content loss: validation pixel MSE (cf. the paper's Figure 4)",
                                               top=top), fig_dir / "content_loss.png"))
    doc.image("figures/content_loss.png", "Content loss (validation pixel MSE in [-1, 1] space) per epoch against "
                                          "the bicubic level (dashed); shaded: the MSE pretraining epochs.")
    if len(objs) > 1:
        written.append(figures.save(figures.pareto(best, objs), fig_dir / "pareto.png"))
        doc.image("figures/pareto.png", "Objectives at each trial's best epoch; red: the Pareto front "
                                        "(no other trial is at least as good on every objective and better on one).")
    imps, why = param_importances(best, spec, keys)
    if imps:
        n = int(best.dropna(subset=[m for m, _ in objs if m in best]).shape[0])
        written.append(figures.save(figures.importances(imps, n), fig_dir / "importances.png"))
        doc.image("figures/importances.png", f"Parameter importances for each objective from Optuna's default "
                                             f"evaluator (PED-ANOVA) over {n} trials"
                                             + ("; with few trials they are rough." if n < 20 else "."))
    else:
        doc.note(f"Parameter importances skipped: {why}.")
    return written


def _verdict_section(doc: Doc, spec: StudySpec, best: pd.DataFrame) -> Table | None:
    """The verdict table the report opens with (None when the spec declares no claims)."""
    doc.heading("Claims")
    if not spec.claims:
        doc.para("The spec declares no claims (a spec's `claims:` list states what the study tests).")
        return None
    results = verdicts.judge_claims(spec.claims, best)
    table = Table(*verdicts.verdict_table(results), caption=(
        "Per claim and comparison (A: the group expected better): each group's mean over its trials (one per "
        "seed) with a 95% percentile-bootstrap interval (scipy.stats.bootstrap, 9999 resamples, fixed seed); "
        "A − B of the judged quantity (|metric − target| for `closer`) with its interval; P(A better) = "
        "Mann-Whitney U / (m n). holds: the interval of A − B excludes 0 in the expected direction; "
        "contradicted: it excludes 0 the other way; not testable: fewer than 2 trials in a group; "
        "inconclusive: otherwise, with the seeds per group that would decide it at the observed effect and "
        "spread (80% power). Metrics at each trial's selected (best-validation) epoch; test-set scores, "
        "gan_psnr_* from the final result. Other differences: logged settings that differ between A's and "
        "B's trials besides the compared keys and the seed (none = no confound)."), text_cols=4)
    doc.bullets([f"`{c.name}` **{v}**: {c.statement or c.metric}"
                 + ("; the groups also differ in " + "; ".join(sorted({x for p in pairs for x in p.confounds}))
                    if any(p.confounds for p in pairs) else "") for c, v, pairs in results])
    doc.table(table)
    return table


def _test_section(doc: Doc, best: pd.DataFrame, groups: pd.DataFrame, spec: StudySpec, keys: list[str]) -> Table | None:
    """The paper's table: test-set PSNR / SSIM per benchmark set, or one line saying there are none."""
    sets = benchmark_table.test_sets(best)
    metric = tables.objectives(spec)[0][0]
    if not sets:
        doc.para("No test-set scores: no benchmark folder was found when the trials ran (set SR_BENCHMARKS to "
                 "a folder holding Set5/, Set14/, BSD100/, Urban100/ or any folder of images named in "
                 "`eval.benchmarks`, then run the study again). The validation table below is all there is.")
        return None
    doc.heading("Test sets", level=3)
    header, refs, rows = benchmark_table.test_table(best, groups, keys, sets)
    table = Table(header, rows, refs, text_cols=1 + len(keys), caption=(
        f"Test-set scores by the SR protocol (Y channel, border crop of `scale` pixels) of each trial's selected "
        f"generator: its best validation epoch by `{metric}` (column test epoch), never chosen on test data. "
        "Mean ± sample std over a group's seeds; groups in the validation ranking; bold: best group per column."))
    doc.table(table)
    return table


def write_report(study: Study, out: Path, bins: int | None = None, top: int = TOP) -> Built:
    """Build every table and figure of `study` into `out` (the only I/O: grids from MLflow, files)."""
    spec = study.spec
    keys = tables.searched_keys(spec, study.trials)
    best = tables.best_rows(study.trials, study.history, spec)
    best["group"] = tables.group_columns(best, spec, keys, bins)["group"]
    groups = tables.group_table(best, spec, keys, bins)
    bicubic = tables.bicubic_rows(best, spec)
    header, refs, rows = tables.main_table(groups, bicubic, spec, keys)
    main = Table(header, rows, refs, caption=_main_caption(spec, groups, bins), text_cols=1 + len(keys))

    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "figures", ignore_errors=True)  # no stale figures from an earlier build
    doc = Doc(f"Study `{study.name}`")
    question = study.parent["description"] or spec.description
    if question:
        doc.para(f"**Question.** {question}")
    doc.para(f"Parent run status **{study.parent['status']}**; {len(best)} trials "
             f"({tables.fmt_statuses(best['status'])}).")
    if study.unfinished:
        doc.note(unfinished_message(study) + ": this report covers what exists so far; build it again when "
                 "the study ends.")
    for note in study.notes:
        doc.note(note)
    verdict_tab = _verdict_section(doc, spec, best)
    doc.heading("Results")
    test_tab = _test_section(doc, best, groups, spec, keys)
    doc.heading("Validation", level=3)
    doc.table(main)
    _setup_section(doc, study)
    doc.heading("Compute used")
    used = tables.compute_used(best, study.history, spec, study.parent)
    doc.table(Table(["quantity", "value"], [[k, v] for k, v in used]))
    figure_files = _figures_section(doc, study, best, groups, bicubic, keys, out / "figures", top)
    figure_files += schedule.pbt_section(doc, study, out / "figures")  # PBT studies only
    doc.heading("All trials")
    metric = tables.objectives(spec)[0][0]
    trial_tab = Table(*tables.trial_table(best, spec, keys), text_cols=1 + len(keys),
                      caption=f"Every trial at its best epoch (best `{metric}`).")
    doc.table(trial_tab)

    (out / "report.md").write_text(doc.to_markdown())
    (out / "report.html").write_text(doc.to_html(out))
    labelled = {"claims": verdict_tab, "test": test_tab, "main": main, "trials": trial_tab}
    (out / "tables.tex").write_text(f"% study {study.name}: \\usepackage{{booktabs}}\n" + "\n".join(
        to_latex(t, f"tab:{study.name}-{label}") for label, t in labelled.items() if t is not None))
    written = [out / "report.md", out / "report.html", out / "tables.tex", *figure_files]
    written += _write_frames(out, long_frame(best, study.history), groups)
    shown = []  # for stdout: the verdicts, the test table, the validation table, no captions
    for t in (verdict_tab, test_tab, main):
        if t is not None:
            shown += md_table(replace(t, caption="")) + [""]
    return Built(out, "\n".join(shown).rstrip("\n"), written)


def unfinished_message(study: Study) -> str:
    running = int((study.trials["status"] == "running").sum())
    return (f"study {study.name!r} is unfinished (parent run {study.parent['status']}, "
            f"{running} of {len(study.trials)} trials still running)")


def log_report(study: Study, out: Path) -> None:
    """The report folder as the parent run's `report/` artifacts (the MLflow UI renders report.html)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(study.tracking_uri).log_artifacts(study.parent["run_id"], str(out), artifact_path="report")


def run(args: argparse.Namespace) -> int:
    if args.bins is not None and args.bins < 1:
        raise UserError(f"--bins {args.bins}: expected a positive number of bins")
    if args.top < 1:
        raise UserError(f"--top {args.top}: expected at least 1 group")
    uri = resolve_tracking_uri(args.tracking_uri)
    # a store that is not one (an empty or text file) is refused before MLflow writes its schema into it
    check_tracking_uri(uri, "--tracking-uri" if args.tracking_uri else "tracking URI", must_exist=True)
    if args.out:
        check_writable_dir(args.out, "--out")
    study = load_study(args.study, uri, args.parent_run_id)
    out = Path(args.out) if args.out else Path("reports_out") / study.name
    print(f"study {study.name}: {len(study.trials)} trials ({tables.fmt_statuses(study.trials['status'])}), "
          f"parent run {study.parent['run_id']} {study.parent['status']}, from {uri}")
    if study.unfinished:
        print(f"note: {unfinished_message(study)}; the report covers what exists so far")
    for note in study.notes:
        print(f"note: {note}")
    built = write_report(study, out.resolve(), args.bins, args.top)
    print(f"\n{built.main_md}")
    print(f"\nwrote {len(built.files)} files to {built.out}: "
          + ", ".join(str(p.relative_to(built.out)) for p in built.files))
    if args.no_log:
        print("--no-log: the report was not logged to MLflow")
    else:
        try:
            log_report(study, built.out)
            print(f"logged to MLflow: parent run {study.parent['run_id']}, artifacts report/")
        except Exception as exc:  # the files on disk are the report; the upload is a convenience
            print(f"warning: could not log the report to MLflow ({type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:160] if str(exc) else ''})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # a report against a server that is down should say so in seconds, not after MLflow's ~2 min of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = build_parser().parse_args(argv)
    from mlflow.exceptions import MlflowException

    where = args.tracking_uri or "default store"
    return one_line_errors(lambda: run(args), (MlflowException, lambda e: f"MLflow ({where}): {first_line(e)}"))


if __name__ == "__main__":
    raise SystemExit(main())
