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
        assert r["gflop_per_image"] > 0 and r["tflops"] > 0
    # a GAN step is a G step plus two D steps on real and fake: more FLOPs than a pretraining step
    assert results[0]["gflop_per_image"] > results[1]["gflop_per_image"]
    assert "pretrain" in format_table(results)


def test_flop_count_of_a_pretraining_step_is_three_times_the_generators_forward():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from trainables.bench import count_flops
    from trainables.models import build_generator

    cfg = bench_config({"data.patch_size": 16, "model.g_channels": 8, "model.g_blocks": 1,
                        "schedule.batch_size": 2, "runtime.device": "cpu"}, steps=1)
    batch = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    with FlopCounterMode(display=False) as forward:
        build_generator(cfg)(torch.rand(2, 3, 8, 8))
    # backward costs about twice the forward (the input's gradient is not needed for the first conv)
    per_image = count_flops(cfg, torch.device("cpu"), "pretrain", batch)
    assert 2.5 < per_image / (forward.get_total_flops() / 2) <= 3.0


def test_cli_flags_reach_the_config(capsys):
    import torch

    from trainables.bench import cli_overrides, main, parser

    args = parser().parse_args(["--paper-size", "--scale", "4", "--precision", "bf16", "--compile", "default",
                                "--device", "cpu", "--batch", "8"])
    cfg = bench_config(cli_overrides(args), steps=2)
    assert (cfg.model.g_channels, cfg.model.g_blocks, cfg.model.d_channels, cfg.model.d_dense) == (64, 16, 64, 1024)
    assert (cfg.scale, cfg.data.patch_size, cfg.schedule.batch_size) == (4, 128, 8)  # 32x32 LR; --batch wins
    assert (cfg.runtime.precision, cfg.runtime.compile, cfg.runtime.device) == ("bf16", "default", "cpu")
    assert cfg.schedule.patches_per_epoch == 16
    assert main(["--steps", "0"]) == 2
    assert "--steps and --repeats must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "--steps", "1", "--repeats", "1"]) == 2
        assert "torch sees no CUDA device" in capsys.readouterr().err
