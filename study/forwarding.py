"""How a trial's Train reports reach Tune: through the trial driver's own thread.

Each Tune trial is a function that fits a TorchTrainer (study/runner.py). `ForwardReports`, a
Train callback on the Train controller, passes every report (and its persisted checkpoint)
through a small `Relay` actor; `fit_forwarding` runs the fit in a thread and reports each one to
Tune from the trial's own thread, acknowledging it, and returns after the last one.

Not Ray's TuneReportCallback: it hands results to the function trainable's main thread while
the trial's thread may already have returned, and when both reach Tune's one-slot result queue
at once the trial hangs for good (seen in a full-suite run: both trials finished, the study
waited forever). Reported from the trial's thread, the function's end always comes after its
last result.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import ray
from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback


@ray.remote(num_cpus=0)
class Relay:
    """One small actor per Train run: a one-slot mailbox of reports, each held until acknowledged."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.acks: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def put(self, item: tuple[dict[str, Any], Checkpoint | None]) -> None:
        """The controller's side: returns once the trial driver acknowledged this report."""
        await self.reports.put(item)
        await self.acks.get()

    async def take(self, timeout: float) -> tuple[dict[str, Any], Checkpoint | None] | None:
        """The trial driver's side: the next report, or None after `timeout` seconds."""
        try:
            return await asyncio.wait_for(self.reports.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def ack(self) -> None:
        await self.acks.put(True)


class ForwardReports(UserCallback):
    """On the Train controller: pass every report and its persisted checkpoint to the trial driver."""

    def __init__(self, relay: Any):
        self.relay = relay

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        out = dict(metrics[0])
        if checkpoint is not None:
            out["checkpoint_path"] = checkpoint.path  # as TuneReportCallback does
        # returns once Tune holds its copy: Train prunes older checkpoints when the next epoch comes
        # (measured: under load a slot of slack let Train delete epoch 1 before the driver copied it)
        ray.get(self.relay.put.remote((out, checkpoint)))


def fit_forwarding(trainer, relay: Any, report: Callable[[dict[str, Any], Checkpoint | None], None]) -> None:
    """`trainer.fit()` in a thread (its callbacks hold `ForwardReports(relay)`); this thread passes each
    forwarded report to `report` (Tune) and acknowledges it, and returns after the last one."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised below, in the trial's own thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="srstudy-train-fit", daemon=True)
    thread.start()
    while True:
        alive = thread.is_alive()  # each report is acknowledged before the fit goes on: none is left after it
        item = ray.get(relay.take.remote(0.2 if alive else 0.0))
        if item is not None:
            report(*item)
            ray.get(relay.ack.remote())
        elif not alive:
            break
    thread.join()
    if errors:
        raise errors[0]
