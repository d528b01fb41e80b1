"""The pipeline catalog: published pipelines found by name.

Each definition lives in its domain (:class:`~batchscore.pipelines.contract.Pipeline`); this
table names where, and a definition is imported only when it is looked up. A name that comes
from a request is only ever a key of this table, never imported itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

from ..workspace import Workspace
from .contract import Pipeline, PipelineNotFoundError

__all__ = ["PIPELINES", "get_pipeline", "pipeline_definition", "validate_params"]

# name -> "module:attribute", in the order they are listed
_REGISTRY = {
    "video-style": "batchscore.video.published:VideoStyle",
    "batch-endpoint": "batchscore.endpoints.published:BatchEndpoint",
    "train-evaluate-register": "batchscore.mlops.published:TrainEvaluateRegister",
    "batch-job": "batchscore.endpoints.published:BatchJob",
    "batch-job-query": "batchscore.endpoints.published:BatchJobQuery",
}


@cache
def _load(name: str) -> Pipeline:
    module, _, attr = _REGISTRY[name].partition(":")
    pipeline: Pipeline = getattr(importlib.import_module(module), attr)()
    assert pipeline.name == name, f"{_REGISTRY[name]} is named {pipeline.name!r}"
    return pipeline


def pipeline_definition(name: str) -> Pipeline:
    """Any pipeline a run may name, published or not (the run lifecycle executes both)."""
    if name not in _REGISTRY:
        raise PipelineNotFoundError(
            f"no pipeline named {name!r}; pipelines are {', '.join(sorted(PIPELINES))}")
    return _load(name)


class _Published(Mapping[str, Pipeline]):
    """The published pipelines by name (what the API lists and starts), loaded on use."""

    def _names(self) -> list[str]:
        return [name for name in _REGISTRY if _load(name).published]

    def __getitem__(self, name: str) -> Pipeline:
        if name not in _REGISTRY or not _load(name).published:
            raise KeyError(name)
        return _load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


PIPELINES: Mapping[str, Pipeline] = _Published()


def get_pipeline(name: str) -> Pipeline:
    """The published pipeline ``name``, or :class:`PipelineNotFoundError`."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise PipelineNotFoundError(
            f"no pipeline named {name!r}; pipelines are {', '.join(sorted(PIPELINES))}"
        ) from None


def validate_params(ws: Workspace, name: str, params: dict[str, Any]) -> BaseModel:
    """The published pipeline's parameters, validated (types, ranges, paths), or
    :class:`~batchscore.errors.SpecError`."""
    return get_pipeline(name).validate(ws, params)
