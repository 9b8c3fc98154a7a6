"""The driver's MLflow recorder: exactly the results Tune accepted, one point per (metric, epoch),
Tune's own keys left out, each epoch's grid read from storage, and no duplicate after a restart."""

import pickle
from types import SimpleNamespace

import numpy as np
from mlflow.tracking import MlflowClient
from PIL import Image

from reports.load import _IMAGE
from study.recorder import TrialRecorder, get_grid, grid_uri, put_file
from study.spec import from_dict as spec_from_dict
from study.tracking import GRID_KEY, StudyTracker

SPEC = {"name": "rec", "base": {"schedule.pretrain_epochs": 1, "schedule.gan_epochs": 2},
        "space": {"loss.beta": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
        "searcher": {"algorithm": "tpe", "seed": 0}, "scheduler": {"type": "none"},
        "objective": {"metric": "val_psnr", "mode": "max"}, "trials": 2,
        "resources": {"workers": 1, "cpus_per_worker": 1}}


def grid_steps(client, run_id: str) -> list[int]:
    """The steps of the run's `sample_grid` images, as the report scripts read them."""
    return [int(m["step"]) for f in client.list_artifacts(run_id, "images")
            if (m := _IMAGE.match(f.path)) and m["key"] == GRID_KEY]


def tune_result(epoch: int, psnr: float) -> dict:
    """What Tune hands its callbacks: the trainer's metrics plus Tune's own bookkeeping."""
    return {"epoch": epoch, "phase": "pretrain" if epoch == 1 else "gan", "status": "running",
            "val_psnr": psnr, "loss_g": 0.5 / epoch, "diverged": 0,
            "time_total_s": 12.5, "training_iteration": epoch, "pid": 4242, "timestamp": 1700000000,
            "time_this_iter_s": 3.0, "done": False, "trial_id": "t1", "checkpoint_path": "/x/checkpoint_0",
            "config": {"loss.beta": 0.01}}


def test_records_accepted_epochs_once_with_their_grids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_from_dict(SPEC)
    driver = StudyTracker(uri, "rec")
    driver.start("name: rec\n", ["plan"], "abc", "")
    settings = driver.worker_settings("abc")
    study_dir = str(tmp_path / "study_results" / "rec")
    trial = SimpleNamespace(trial_id="t1", config={"loss.beta": 0.01})

    # rank 0 put the grids of epochs 1-3 into storage; Tune accepted epochs 1 and 2 only
    for epoch in (1, 2, 3):
        png = tmp_path / f"g{epoch}.png"
        Image.fromarray(np.full((6, 8, 3), 40 * epoch, np.uint8)).save(png)
        put_file(str(png), grid_uri(study_dir, "t1", epoch))
    assert np.asarray(get_grid(grid_uri(study_dir, "t1", 3)))[0, 0, 0] == 120
    assert get_grid(grid_uri(study_dir, "t1", 9)) is None

    recorder = TrialRecorder(spec, settings, study_dir)
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, tune_result(1, 30.0))
    recorder.on_trial_result(0, [], trial, tune_result(2, 31.0))
    recorder.on_trial_result(0, [], trial, tune_result(2, 31.0))  # a re-reported epoch: not logged again

    client = MlflowClient(uri)
    kids = driver.children()
    assert list(kids) == ["t1"]
    run_id = kids["t1"].info.run_id
    assert kids["t1"].data.params["loss.beta"] == "0.01"
    assert kids["t1"].info.run_name == "t1 beta=0.01"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val_psnr")] == [(1, 30.0), (2, 31.0)]
    assert [m.step for m in client.get_metric_history(run_id, "phase_gan")] == [1, 2]
    logged = set(kids["t1"].data.metrics)
    assert not logged & {"time_total_s", "training_iteration", "pid", "timestamp", "time_this_iter_s", "done"}
    assert sorted(grid_steps(client, run_id)) == [1, 2]  # epoch 3's grid was never accepted

    # a restarted driver (its pickled callback) continues the same child run, still one point per epoch
    again = pickle.loads(pickle.dumps(recorder))
    assert again.trackers == {}
    again.on_trial_result(0, [], trial, tune_result(2, 31.0))
    again.on_trial_result(0, [], trial, tune_result(3, 32.0))
    assert list(driver.children()) == ["t1"]
    assert [m.step for m in client.get_metric_history(run_id, "val_psnr")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "loss_g")] == [1, 2, 3]
    assert sorted(grid_steps(client, run_id)) == [1, 2, 3]


def test_keeps_the_generator_of_the_best_accepted_epoch_only(tmp_path, monkeypatch):
    """Rank 0 copies each epoch's generator to storage; the driver keeps the best accepted epoch's copy
    (epoch 2 at 31 dB, then still epoch 2 when epoch 3 scores lower) and removes the ones it superseded;
    epoch 4, which a worker reported after the trial's last accepted result, stays for settle to clear."""
    from study.recorder import generator_uri, put_generator
    from trainables import checkpoint
    from trainables.config import load_config
    from trainables.models import build_generator

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = StudyTracker(uri, "rec")
    driver.start("name: rec\n", ["plan"], "abc", "")
    study_dir = str(tmp_path / "study_results" / "rec")
    cfg = load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1})
    for epoch in (1, 2, 3, 4):
        ckpt = checkpoint.save(tmp_path / f"ckpt{epoch}", cfg, {"generator": build_generator(cfg).state_dict()})
        put_generator(str(ckpt), generator_uri(study_dir, "t1", epoch))
    recorder = TrialRecorder(spec_from_dict(SPEC), driver.worker_settings("abc"), study_dir)
    trial = SimpleNamespace(trial_id="t1", config={"loss.beta": 0.01})
    present = lambda: sorted(int(p.name[-4:]) for p in (tmp_path / "study_results/rec/generators/t1").iterdir())  # noqa: E731
    recorder.on_trial_result(0, [], trial, tune_result(1, 30.0))
    recorder.on_trial_result(0, [], trial, tune_result(2, 31.0))
    assert present() == [2, 3, 4]
    recorder.on_trial_result(0, [], trial, tune_result(3, 30.5))
    assert present() == [2, 4]
    assert checkpoint.generator_from_folder(generator_uri(study_dir, "t1", 2))[0] == cfg
