"""One trial: the config schema, data sources, degradation, models, losses, metrics, the trainer,
checkpoints and grids, with the command-line tools that run them (`python -m trainables.train`,
`.evaluate`, `.bench`, `.quality`).

May import: torch, torchvision, numpy, PIL, PyYAML, PyAV, and itself. Never Ray, MLflow, Optuna,
or the `study` and `reports` packages: a trial runs the same inside a Ray Train worker and alone.
"""
