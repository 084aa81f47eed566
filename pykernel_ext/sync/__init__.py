"""MLflow sync: push runs to a team's MLflow tracking server, pull its runs back, and mirror every run that
ends through an outbox in the store. mlflow (the `pykernel-ext[mlflow]` extra) is imported only by
`client.py`, `push.py` and `pull.py`, inside the functions that talk to MLflow.
"""
