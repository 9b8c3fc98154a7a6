"""Live progress of a study on the terminal: one line per trial event, not Tune's tables."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from ray.tune import Callback

from study.spec import StudySpec

# set by study.run when Ctrl-C or SIGTERM arrives: Tune then stops the running trials, and
# those stops are interruptions, not the scheduler's early stops
INTERRUPTED = threading.Event()


class ProgressPrinter(Callback):
    """Prints when a trial starts, after each epoch it reports, and how it ended."""

    def __init__(self, spec: StudySpec):
        self.spec = spec
        self.started = time.monotonic()
        self.numbers: dict[str, int] = {}
        self.done = 0

    def _tag(self, trial) -> str:
        n = self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)
        return f"[{time.monotonic() - self.started:6.0f}s] trial {n:>2}/{self.spec.total_trials} {trial.trial_id}"

    def _say(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        searched = ", ".join(f"{k}={_short(v)}" for k, v in trial.config.items() if k in self.spec.space)
        self._say(f"{self._tag(trial)} started   {searched}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        if "epoch" not in result:
            return
        parts = [f"epoch {result['epoch']}", str(result.get("phase", ""))]
        for name in self.spec.objective.metrics:
            if name in result:
                parts.append(f"{name} {_short(result[name])}")
        if "bicubic_psnr" in result:
            parts.append(f"(bicubic {result['bicubic_psnr']:.2f})")
        self._say(f"{self._tag(trial)} " + " ".join(p for p in parts if p))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.done += 1
        last = trial.last_result or {}
        status = last.get("status", "?")
        if status == "running":
            status = "interrupted" if INTERRUPTED.is_set() else "stopped early"
        self._say(f"{self._tag(trial)} {status} after {last.get('epoch', 0)} epochs "
                  f"({self.done}/{self.spec.total_trials} done)")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.done += 1
        self._say(f"{self._tag(trial)} FAILED ({self.done}/{self.spec.total_trials} done); "
                  f"error file: {getattr(trial, 'error_file', None) or 'see the results table'}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
