"""Study reports: MLflow -> pandas (`load`) -> tables, claim verdicts, figures and a report
(`python -m reports.build`).

May import: `trainables`, `study` (names, the spec's loader, tracking constants), MLflow, pandas,
matplotlib, scipy. Nothing imports `reports`.
"""
