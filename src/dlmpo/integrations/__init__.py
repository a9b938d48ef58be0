"""dlmpo where prompt engineers already work: a DSPy teleprompter (`integrations.dspy`), a GEPA
proposer (`integrations.gepa`) and an MLflow prompt optimizer (`integrations.mlflow`). Each module
imports its package lazily and names the `pip install` that fixes a missing one
(docs/integrations.md)."""
