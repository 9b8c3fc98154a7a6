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
