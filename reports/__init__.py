"""Study reports: MLflow -> pandas (`load`) -> tables, figures and a report (`python -m reports.build`)."""
