"""Runner pieces that need no Ray cluster: metric cleaning and the shared-storage check."""

import pytest

from study import runner
from trainables.errors import UserError


def test_scalar_metrics_keep_numbers_and_the_phase():
    clean = runner.scalar_metrics({"epoch": 2, "phase": "gan", "status": "running", "val_psnr": 30.5,
                                   "grid_path": "/x.png", "note": object()})
    assert clean == {"epoch": 2, "phase": "gan", "status": "running", "val_psnr": 30.5}


def test_filesystem_type_of_the_root_is_known():
    assert runner.filesystem_type("/") != ""


def test_local_storage_on_a_multi_host_cluster_is_refused(monkeypatch, tmp_path):
    nodes = [{"NodeManagerAddress": "10.0.0.1", "Alive": True}, {"NodeManagerAddress": "10.0.0.2", "Alive": True}]
    monkeypatch.setattr(runner.ray, "nodes", lambda: nodes)
    monkeypatch.setattr(runner, "filesystem_type", lambda path: "ext4")
    with pytest.raises(UserError, match="local path .ext4 filesystem. on a cluster of 2 hosts"):
        runner.check_storage(str(tmp_path))
    runner.check_storage("s3://bucket/studies")  # URIs are shared storage
    monkeypatch.setattr(runner, "filesystem_type", lambda path: "nfs4")
    runner.check_storage(str(tmp_path))  # so is NFS
    monkeypatch.setattr(runner, "filesystem_type", lambda path: "ext4")
    monkeypatch.setenv("SRSTUDY_SHARED_STORAGE", "1")
    runner.check_storage(str(tmp_path))  # the user vouches for it


def test_one_host_may_use_a_local_path(monkeypatch, tmp_path):
    nodes = [{"NodeManagerAddress": "127.0.0.1", "Alive": True}, {"NodeManagerAddress": "127.0.0.1", "Alive": True}]
    monkeypatch.setattr(runner.ray, "nodes", lambda: nodes)
    runner.check_storage(str(tmp_path))


def _spec(**resources):
    from study.spec import from_dict

    return from_dict({"name": "t", "space": {"loss.beta": {"type": "uniform", "low": 0.001, "high": 0.01}},
                      "trials": 8, "resources": resources})


def test_plan_concurrency_counts_workers_and_refuses_the_impossible(monkeypatch):
    monkeypatch.setattr(runner.ray, "cluster_resources", lambda: {"CPU": 3.0})
    # a local Ray gets one extra logical CPU for the trial drivers, not counted for workers
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1), driver_cpus=1) == 2
    assert runner.plan_concurrency(_spec(workers=2, cpus_per_worker=1), driver_cpus=1) == 1
    with pytest.raises(UserError, match=r"needs 1 GPU\(s\) .* the cluster has 0"):
        runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=1), driver_cpus=1)
    with pytest.raises(UserError, match="needs 4 CPU"):
        runner.plan_concurrency(_spec(workers=4, cpus_per_worker=1), driver_cpus=1)
    monkeypatch.setattr(runner.ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 8.0})
    assert runner.plan_concurrency(_spec(workers=2, cpus_per_worker=4, gpus_per_worker=1)) == 4


def test_the_keeper_holds_the_best_and_latest_accepted_checkpoints(tmp_path):
    """Epoch 2 is the best accepted and epoch 4 the latest: 1 and 3 go; then 5 (as good as 2) supersedes 4. Before
    that, epoch 5 is one the driver never accepted (a worker running ahead of a stop): not the keeper's to delete."""
    from types import SimpleNamespace

    from study.spec import from_dict

    spec = from_dict({"name": "keep", "trials": 1, "space": {"loss.beta": {"type": "uniform", "low": 0, "high": 1}}})
    keeper = runner.CheckpointKeeper(spec, str(tmp_path))
    trial = SimpleNamespace(trial_id="t1")
    dirs = {e: tmp_path / "train_runs" / f"checkpoint_{e}" for e in range(1, 6)}
    for d in dirs.values():
        d.mkdir(parents=True)
        (d / "state.pt").write_bytes(b"x")
    for epoch, psnr in [(1, 30.0), (2, 31.5), (3, 31.0), (4, float("nan"))]:
        keeper.on_trial_result(0, [], trial, {"epoch": epoch, "val_psnr": psnr, "checkpoint_path": str(dirs[epoch])})
    assert sorted(e for e, d in dirs.items() if d.exists()) == [2, 4, 5]  # best 2, latest 4, never-accepted 5
    keeper.on_trial_result(0, [], trial, {"epoch": 5, "val_psnr": 31.5, "checkpoint_path": str(dirs[5])})
    assert sorted(e for e, d in dirs.items() if d.exists()) == [2, 5]  # a tie keeps the earlier epoch as best
