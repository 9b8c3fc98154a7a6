"""How a trial's Train reports reach Tune: through the trial driver's own thread.

Each Tune trial is a function that fits a TorchTrainer (study/runner.py). `ForwardReports`, a
Train callback on the Train controller, passes every report (and its persisted checkpoint)
through a Ray queue; `fit_forwarding` runs the fit in a thread and reports each one to Tune from
the trial's own thread, acknowledging it, and returns after the last one.

Not Ray's TuneReportCallback: it hands results to the function trainable's main thread while
the trial's thread may already have returned, and when both reach Tune's one-slot result queue
at once the trial hangs for good (seen in a full-suite run: both trials finished, the study
waited forever). Reported from the trial's thread, the function's end always comes after its
last result.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Empty, Queue


class ForwardReports(UserCallback):
    """On the Train controller: pass every report and its persisted checkpoint to the trial driver."""

    def __init__(self, queue: Queue, done: Queue):
        self.queue, self.done = queue, done

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        out = dict(metrics[0])
        if checkpoint is not None:
            out["checkpoint_path"] = checkpoint.path  # as TuneReportCallback does
        self.queue.put((out, checkpoint))
        # wait until Tune holds its copy: Train prunes older checkpoints when the next epoch comes
        # (measured: under load a slot of slack let Train delete epoch 1 before the driver copied it)
        self.done.get()


def report_queues() -> tuple[Queue, Queue]:
    """The controller -> driver queue of reports and the driver -> controller queue of acknowledgements."""
    return Queue(maxsize=1, actor_options={"num_cpus": 0}), Queue(maxsize=1, actor_options={"num_cpus": 0})


def fit_forwarding(trainer, queue: Queue, done: Queue,
                   report: Callable[[dict[str, Any], Checkpoint | None], None]) -> None:
    """`trainer.fit()` in a thread (its callbacks hold `ForwardReports(queue, done)`); this thread passes
    each forwarded report to `report` (Tune) and acknowledges it, and returns after the last one."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised below, in the trial's own thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="srstudy-train-fit", daemon=True)
    thread.start()
    while thread.is_alive() or not queue.empty():
        try:
            metrics, checkpoint = queue.get(timeout=0.2)
        except Empty:
            continue
        report(metrics, checkpoint)
        done.put(True)
    thread.join()
    if errors:
        raise errors[0]
