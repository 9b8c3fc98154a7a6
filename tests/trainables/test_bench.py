"""The trainer-vs-bare-loop benchmark runs end to end on a tiny model (no speed assertion)."""

import math

from trainables.bench import bench_config, format_table, run_bench


def test_bench_reports_positive_rates_for_both_loops():
    cfg = bench_config({"data.patch_size": 32, "model.g_channels": 8, "model.g_blocks": 1,
                        "model.d_channels": 8, "model.d_dense": 16, "schedule.batch_size": 4,
                        "runtime.threads": 1}, steps=2)
    results = run_bench(cfg, repeats=1)
    assert [r["mode"] for r in results] == ["gan", "pretrain"]
    for r in results:
        assert r["trainer"] > 0 and r["bare"] > 0 and math.isfinite(r["ratio"]) and r["ratio"] > 0
        assert r["cpu_ratio"] > 0 and len(r["trainer_runs"]) == len(r["bare_runs"]) == 1
    assert "pretrain" in format_table(results)
