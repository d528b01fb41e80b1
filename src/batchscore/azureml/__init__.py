"""Azure ML compatibility: parallel job YAMLs (``type: parallel``) run on the entry-script
engine (:mod:`batchscore.azureml.parallel`).

The rest of Azure ML's vocabulary lives where its concept does: registered model and data
assets, references such as ``azureml:NAME@latest``, MLflow deployments without a scoring
script and environments in :mod:`batchscore.registry`; the syntax of a reference in a spec in
:mod:`batchscore.jobs.refs`; batch endpoints and deployments in :mod:`batchscore.endpoints`.
"""
