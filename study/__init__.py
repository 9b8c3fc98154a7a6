"""A study: the spec (what to search, how to judge it), the CLI (`python -m study.run`), the Ray
Tune / Ray Train glue that runs each trial's trainer, population-based training, MLflow tracking
(the driver is the only writer), claims, fault injection and the study benchmark.

May import: `trainables`, Ray, Optuna, MLflow, pandas. Never `reports`.
"""
