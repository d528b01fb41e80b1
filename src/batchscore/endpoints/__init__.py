"""Batch endpoints: a name bound to a scorer and default job settings, its deployments, and
invoking it.

- :mod:`~batchscore.endpoints.endpoints`: the endpoints (the one writer of their table);
- :mod:`~batchscore.endpoints.deployments`: an endpoint's named deployments, one its default;
- :mod:`~batchscore.endpoints.specs`: the job spec an endpoint or deployment holds, and the
  checks it passes before it is recorded;
- :mod:`~batchscore.endpoints.invocation`: invoking an endpoint or a deployment (a job started
  asynchronously with its ``batch-endpoint`` run) and listing the invocations.

``python -m batchscore.pipelines RUN_ID`` is the detached runner of an invocation.
"""

from .deployments import (
    LEGACY,
    Deployment,
    DeploymentNotFoundError,
    create_deployment,
    default_deployment,
    delete_deployment,
    get_deployment,
    list_deployments,
    load_endpoint_yaml,
    set_default,
)
from .endpoints import (
    Endpoint,
    EndpointExistsError,
    EndpointNotFoundError,
    create_bare_endpoint,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
)
from .invocation import (
    PIPELINE,
    Invocation,
    deployment_jobs,
    endpoint_job_spec,
    invocations,
    invoke_deployment,
    invoke_endpoint,
    resolve_connections,
    start_runner,
)
from .specs import check_model_location, tabular_endpoint_spec

__all__ = [
    "LEGACY",
    "PIPELINE",
    "Deployment",
    "DeploymentNotFoundError",
    "Endpoint",
    "EndpointExistsError",
    "EndpointNotFoundError",
    "Invocation",
    "check_model_location",
    "create_bare_endpoint",
    "create_deployment",
    "create_endpoint",
    "default_deployment",
    "delete_deployment",
    "delete_endpoint",
    "deployment_jobs",
    "endpoint_job_spec",
    "get_deployment",
    "get_endpoint",
    "invocations",
    "invoke_deployment",
    "invoke_endpoint",
    "list_deployments",
    "list_endpoints",
    "load_endpoint_yaml",
    "resolve_connections",
    "set_default",
    "start_runner",
    "tabular_endpoint_spec",
]
