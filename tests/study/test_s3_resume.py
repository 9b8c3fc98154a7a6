"""A study on object storage: the driver is killed mid-study, `--resume` on S3 ends with the planned trials.

A real S3-compatible server (moto's server mode) runs on 127.0.0.1 for the test; the
study's `--storage s3://...` goes through Ray's own `storage_path` (pyarrow's S3
filesystem), so checkpoints, Tune's state and sample grids all live in the bucket. The
MLflow parent run is found again from MLflow's tags, not from a local file: one parent,
one child run per trial, one point per (metric, epoch).

moto 5.2.1 answers CompleteMultipartUpload with the root tag
`CompleteMultipartUploadResponse` where S3 (and pyarrow, which checks it) uses
`CompleteMultipartUploadResult` (getmoto/moto#10055); every pyarrow upload then fails
with INTERNAL_FAILURE. The server runs in this process, so the fixture corrects the tag.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.study.processes import kill_study_after, smoke_spec, study_env

BUCKET = "studies"


@pytest.fixture
def s3_env():
    """Environment for a driver and its Ray workers that points the AWS SDKs at a local S3 server."""
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from moto.s3.responses import S3Response

    original = S3Response.serialized

    def serialized(self, result):  # see the module docstring: moto's root tag, as S3 writes it
        status, headers, body = original(self, result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, str):
            body = body.replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
        return status, headers, body

    S3Response.serialized = serialized
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.stop()
        S3Response.serialized = original


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_driver_killed_then_resume_on_s3(tmp_path, s3_env):
    import boto3
    from mlflow.tracking import MlflowClient

    spec = smoke_spec(name="s3resume", trials=2, max_concurrent=1, scheduler={"type": "none"})
    path = tmp_path / "s3resume.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = study_env(**s3_env)
    args = [str(path), "--storage", f"s3://{BUCKET}/runs"]
    kill_study_after(tmp_path, args, "(1/2 done)", timeout=300, env=env)

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/s3resume/").get("Contents", [])]
    assert any(k.endswith("tuner.pkl") for k in keys), keys  # Tune's state is in the bucket, not on disk
    assert not (tmp_path / "study_results").exists()

    done = subprocess.run([sys.executable, "-u", "-m", "study.run", *args, "--resume"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no MLflow parent run of this spec" not in done.stderr  # the parent run was found by its tags

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("s3resume")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("srstudy.role") == "study"]
    kids = [r for r in runs if r.data.tags.get("srstudy.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == 2 and len({k.data.tags["srstudy.trial_id"] for k in kids}) == 2  # the planned trials
    for kid in kids:
        assert kid.data.tags["srstudy.status"] == "completed" and kid.info.status == "FINISHED"
        assert kid.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "val_psnr")] == [1, 2, 3]
