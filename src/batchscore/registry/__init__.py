"""The registry: what a deployment names and the workspace keeps, shared by the domains.

- :mod:`~batchscore.registry.models`: registered models on MLflow's registry (embedded in the
  workspace by default): versions, aliases (``staging``, ``production``), promotion history;
- :mod:`~batchscore.registry.assets`: Azure ML's model and data assets (``azureml:NAME@latest``)
  and the resolution of a spec's references when a job is submitted (the engine's ``prepare``
  hook);
- :mod:`~batchscore.registry.envs`: environments, a deployment's requirements as a cached
  virtualenv its workers run in (the engine's ``environment`` hook), with
  :mod:`~batchscore.registry.env_runner`, and :mod:`~batchscore.registry.mlflow_driver`, the
  scoring script of an MLflow model deployed without one.

Importing this package does not import MLflow; its functions do.
"""
