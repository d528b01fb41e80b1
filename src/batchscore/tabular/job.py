"""The ``tabular`` job kind: Python models score tables in parallel, resumably.

A tabular job is a :class:`~batchscore.jobs.spec.JobSpec` with ``kind: tabular`` and its
settings in ``options`` (:class:`TabularOptions`). Inputs are CSV / Parquet files in any store
(or one database URL and ``options.query``); they are planned into mini-batches of rows
(:mod:`batchscore.io`). Each worker loads the model once (or, with ``group_by``, each group's model
on first use, kept in an LRU cache), scores its mini-batches, rejects the rows the model
cannot take (:mod:`.scoring`) and writes a Parquet part of the key columns, the predictions
and ``batchscore_job_id``. The commit assembles the parts into files or a SQL table
(:mod:`.writers`) and the rejected rows into ``jobs/<id>/logs/rejected_rows.csv``.
"""

from __future__ import annotations

import difflib
import json
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import InputError, SpecError
from ..io.files import file_format, plan_file, read_item
from ..io.sql import DEFAULT_SQL_ROW_GROUP, is_database_url, snapshot_query
from ..jobs.kinds import CommitContext, JobKind, Scorer, TaskResult, WorkerConfig, worker_name
from ..jobs.plan import PlannedBatch
from ..jobs.spec import TABULAR_MINI_BATCH_ROWS, JobSpec
from ..paths import model_pin, part_path, rejected_rows
from ..redact import safe_url
from ..storage import Store, expand_inputs, to_url
from .models import (
    REGISTRY_PREFIX,
    LoadedModel,
    ModelCache,
    ModelLoader,
    ModelNotFoundError,
    default_registry_uri,
    group_ref,
    group_value_problem,
    hive_ref,
    placeholders,
    plain_value,
    template_root,
)
from .scoring import Reject, score_rows
from .writers import (
    JOB_COLUMN,
    check_target,
    commit,
    output_target,
    rejects_of,
    write_part,
    write_rejects,
)

__all__ = ["DEFAULT_ROWS", "TabularKind", "TabularOptions", "parse_options", "tabular_spec"]

DEFAULT_ROWS = TABULAR_MINI_BATCH_ROWS  # rows per mini-batch when the spec does not say


class TabularOptions(BaseModel):
    """The ``options`` of a tabular job."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str
    registry_uri: str | None = None
    group_by: list[str] = []
    keys: list[str] | None = None
    features: list[str] | None = None
    prediction: str = "prediction"
    query: str | None = None
    table: str | None = None
    output_format: Literal["parquet", "csv", "sql"] | None = None
    model_cache: int = Field(1024, ge=1)
    # The reference as the caller gave it, when ``model`` is the version it resolved to (a
    # batch endpoint pins models:/NAME@production to models:/NAME/7): lineage, not used.
    model_ref: str | None = None
    # A registered connection's limits on options.query (read_only, statement_timeout,
    # max_rows, connection): set when the input is connection:NAME (batchscore.connections).
    sql_limits: dict[str, Any] | None = None

    @field_validator("group_by", "keys", "features", mode="before")
    @classmethod
    def _column_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "Device,Sensor", as a command line gives it
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list | tuple):
            if not all(isinstance(v, str) and v.strip() for v in value):
                raise ValueError("must be a list of column names")
            names = [v.strip() for v in value]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"names column(s) {repeated} more than once")
            return names
        return value

    @field_validator("model", "prediction")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("query", "table", "registry_uri", "model_ref")
    @classmethod
    def _none_or_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave it out instead)")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> TabularOptions:
        names = placeholders(self.model)
        if names and not self.group_by:
            raise ValueError(f"model {self.model!r} has placeholders {names}; they are filled "
                             "with each group's values, so give group_by")
        unknown = [n for n in names if n not in self.group_by]
        if unknown:
            raise ValueError(f"model {self.model!r}: placeholder(s) {unknown} are not group_by "
                             f"columns {self.group_by}")
        if names:
            template_root(self.model)  # the models' fixed folder (a SpecError without one)
        if self.prediction == JOB_COLUMN or self.prediction in self.key_columns:
            raise ValueError(f"prediction {self.prediction!r} is the name of a key column or "
                             "of the job id column; name it differently")
        return self

    @property
    def key_columns(self) -> list[str]:
        """The input columns copied beside the predictions (``keys``, else ``group_by``)."""
        return list(self.keys) if self.keys is not None else list(self.group_by)

    @property
    def placeholders(self) -> list[str]:
        return placeholders(self.model)


def parse_options(raw: dict[str, Any]) -> TabularOptions:
    """Validate a tabular job's ``options``; a bad one raises a :class:`SpecError` that names
    the option and what is wrong."""
    if not isinstance(raw, dict):
        raise SpecError(f"options of a tabular job must be a mapping, not {raw!r}")
    known = set(TabularOptions.model_fields)
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"unknown tabular option {key!r}{hint}; options are "
                            f"{', '.join(sorted(known))}")
    if "model" not in raw:
        raise SpecError("a tabular job needs options.model: models:/NAME@ALIAS, "
                        "models:/NAME/VERSION, or a model folder or file")
    try:
        return TabularOptions(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        prefix = f"options.{where}: " if where else "options: "
        got = f" (got {err.get('input')!r})" if where else ""
        raise SpecError(f"{prefix}{msg}{got}") from None


class TabularKind(JobKind):
    name = "tabular"
    uses_inputs = False  # each mini-batch names its files
    commit_reads_shutdown = False  # a worker's shutdown() only removes its scratch folder

    def __init__(self) -> None:
        self._model: LoadedModel | None = None  # the single model, read at submit

    # -- submit ----------------------------------------------------------------------------
    def validate(self, spec: JobSpec) -> None:
        opts = parse_options(spec.options)
        if spec.partition_keys:
            raise SpecError("a tabular job groups rows with options.group_by, not "
                            "partition_keys")
        registry = default_registry_uri(opts.registry_uri)
        if opts.model.startswith(REGISTRY_PREFIX) and registry is None:
            raise SpecError(f"options.model {opts.model!r} is in a model registry, but none "
                            "is set: give options.registry_uri or set MLFLOW_TRACKING_URI")
        if opts.placeholders:
            return  # each group's model is looked up by the workers
        scratch = tempfile.mkdtemp(prefix="batchscore-submit-")
        try:
            loader = ModelLoader(registry, scratch)
            if opts.group_by:
                self._check_hive(opts, loader)
            else:
                self._model = loader.load(opts.model)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _check_hive(opts: TabularOptions, loader: ModelLoader) -> None:
        """``model`` with group_by and no placeholders: a folder of ``Column=value`` folders."""
        from fsspec.core import url_to_fs

        if opts.model.startswith(REGISTRY_PREFIX):
            raise SpecError(
                f"options.model {opts.model!r} with group_by needs {{Column}} placeholders "
                f"(e.g. models:/name-{{{opts.group_by[0]}}}@production), or a folder with one "
                "model per group")
        fs, path = url_to_fs(to_url(opts.model))
        path = path.rstrip("/")
        if not fs.isdir(path):
            raise ModelNotFoundError(
                f"options.model {opts.model}: with group_by and no {{Column}} placeholders "
                f"it is a folder with one model per group "
                f"({opts.model}/{opts.group_by[0]}=.../), and no such folder exists")
        prefix = f"{opts.group_by[0]}="
        if not any(p.rstrip("/").rsplit("/", 1)[-1].startswith(prefix)
                   for p in fs.ls(path, detail=False)):
            raise ModelNotFoundError(
                f"model folder {opts.model} holds no {prefix}... folders: with group_by "
                f"{opts.group_by} each group's model is in "
                f"{opts.model}/{'/'.join(f'{c}=VALUE' for c in opts.group_by)}/")

    def expand_inputs(self, spec: JobSpec, inputs: Sequence[str]) -> list[str]:
        opts = parse_options(spec.options)
        if any(is_database_url(str(i)) for i in inputs) or spec.input_format == "sql":
            if len(inputs) != 1 or not is_database_url(str(inputs[0])):
                raise InputError(f"a SQL input is one database URL (sqlite:///..., "
                                 f"postgresql://...), got {[safe_url(str(i)) for i in inputs]}")
            if opts.query is None:
                raise SpecError(f"input {safe_url(inputs[0])} is a database: give the SELECT "
                                "to score as options.query")
            return [str(inputs[0])]
        if opts.query is not None:
            raise SpecError("options.query needs one database URL as input "
                            f"(sqlite:///..., postgresql://...), not {list(inputs)}")
        urls: list[str] = []
        declared = spec.input_format if spec.input_format in ("csv", "parquet") else None
        for pattern in inputs:
            found = expand_inputs([pattern])
            explicit = len(found) == 1 and found[0] == to_url(pattern).rstrip("/")
            if not explicit:  # _SUCCESS, _errors.csv, ... of a folder are not data
                found = [u for u in found if not u.rsplit("/", 1)[-1].startswith("_")]
            if not found:
                raise InputError(f"input {pattern!r} matches no data file")
            for url in found:
                file_format(url, declared)
                if url not in urls:
                    urls.append(url)
        return urls

    def check_output(self, spec: JobSpec, output_url: str, overwrite: bool) -> None:
        opts = parse_options(spec.options)
        check_target(output_target(output_url, opts.output_format, opts.table), overwrite)

    def plan(self, spec: JobSpec, urls: list[str], system: Store) -> list[PlannedBatch]:
        opts = parse_options(spec.options)
        size = spec.mini_batch_size
        source = None
        if len(urls) == 1 and is_database_url(urls[0]):
            assert opts.query is not None
            group = size if isinstance(size, int) else DEFAULT_SQL_ROW_GROUP
            snapshot, _ = snapshot_query(urls[0], opts.query, system, group, opts.sql_limits)
            shown = opts.sql_limits.get("connection") if opts.sql_limits else None
            source = f"connection:{shown} (query)" if shown else f"{safe_url(urls[0])} (query)"
            files = [(snapshot, "parquet")]
        else:
            declared = spec.input_format if spec.input_format in ("csv", "parquet") else None
            files = [(url, file_format(url, declared)) for url in urls]
        needed = list(dict.fromkeys([*opts.group_by, *opts.key_columns,
                                     *self._known_features(opts)]))
        batches: list[PlannedBatch] = []
        for url, fmt in files:
            planned = plan_file(url, fmt, size, spec.input_encoding, source)
            missing = [c for c in needed if c not in planned.columns]
            if missing and (planned.rows or planned.columns):
                raise InputError(
                    f"input {source or url}: column(s) {missing} not found (needed as "
                    f"group_by, keys or model features); its columns are {planned.columns}")
            batches.extend(PlannedBatch(items=[item], n_items=n) for item, n in planned.batches)
        return batches

    def _known_features(self, opts: TabularOptions) -> list[str]:
        if opts.features is not None:
            return list(opts.features)
        model = self._model
        if model is None:
            return []
        if model.columns is not None:
            return [c.name for c in model.columns if c.required]
        return list(model.feature_names or [])

    # -- run -------------------------------------------------------------------------------
    def stage(self, job_id: str, spec: JobSpec, system: Store) -> None:
        """Pin the model: ``models:/NAME@production`` is the version it names when the job
        first runs, for the whole job and its resumes (kept in ``jobs/<id>/tabular.json``)."""
        rel = model_pin(job_id)
        if system.exists(rel):
            return
        opts = parse_options(spec.options)
        registry = default_registry_uri(opts.registry_uri)
        model = opts.model
        if not opts.group_by:
            model = ModelLoader(registry).resolve(opts.model)
        # the registry as given, never $MLFLOW_TRACKING_URI's value: it may hold a password
        # (workers read the environment themselves)
        system.write_text(rel, json.dumps({"model": model,
                                           "requested": opts.model_ref or opts.model,
                                           "registry_uri": opts.registry_uri,
                                           "pinned_at": time.time()}))

    def make_scorer(self, cfg: WorkerConfig) -> Scorer:
        return TabularScorer(cfg)

    def commit(self, ctx: CommitContext) -> None:
        opts = parse_options(ctx.spec.options)
        commit(ctx.job_id, output_target(ctx.output_url, opts.output_format, opts.table),
               ctx.system, ctx.parts)


class TabularScorer:
    """One worker: its model (or cache of group models), scoring mini-batches of rows."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.opts = parse_options(cfg.spec.options)
        self.store = Store(cfg.system_url, "system")
        rel = model_pin(cfg.job_id)
        pin = json.loads(self.store.read_text(rel)) if self.store.exists(rel) else {}
        registry = pin.get("registry_uri") or default_registry_uri(self.opts.registry_uri)
        # in the run's scratch, which the runner removes once the workers have stopped
        # (this worker's own is removed by shutdown() where it ends normally)
        Path(cfg.scratch_dir).mkdir(parents=True, exist_ok=True)
        self.scratch = tempfile.mkdtemp(prefix="tabular-", dir=cfg.scratch_dir)
        self.loader = ModelLoader(registry, self.scratch, roots=self._roots())
        self.cache = ModelCache(self.loader, self.opts.model_cache)
        self.keys = self.opts.key_columns
        self.group_by = list(self.opts.group_by)
        self.single: LoadedModel | None = None
        if not self.group_by:
            self.single = self.loader.load(pin.get("model") or self.opts.model)
        features = self.opts.features or (self.single.features if self.single else None)
        self.columns = None if features is None else \
            list(dict.fromkeys([*self.group_by, *self.keys, *features]))

    def _roots(self) -> list[str] | None:
        """Where each group's model must be: inside the template's fixed folder (or the hive
        folder); None for one model, or models of a registry."""
        model = self.opts.model
        if not self.opts.group_by or model.startswith(REGISTRY_PREFIX):
            return None
        if self.opts.placeholders:
            root = template_root(model)
            assert root is not None
            return [root]
        return [model]

    def run(self, idx: int, attempt: int, items: list[Any]) -> TaskResult:
        started = time.time()
        item = items[0]
        frame = read_item(item, self.cfg.spec.input_encoding, self.columns)
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # a model's warnings go to the worker's log
            scored, rejects = self._score(frame)
        out = self._output(frame, scored)
        part = part_path(self.cfg.parts_prefix, idx, attempt, ".parquet")
        write_part(self.store, part, out, self.cfg.job_id,
                   [k for k in self.group_by if k in out.columns])
        error = None
        if rejects:
            source = item.get("source") or item["url"]
            write_rejects(self.store, rejects_of(part), [
                {"input": source, "row": r.row, "keys": self._key_text(frame, r.row),
                 "column": r.column, "problem": r.problem} for r in rejects])
            error = _summary(rejects, len(frame), source, self.cfg.job_id)
        return TaskResult(idx, attempt, worker_name(), started, time.time(), len(out), part,
                          error)

    def _features(self, model: LoadedModel, frame: pd.DataFrame) -> list[str]:
        if self.opts.features is not None:
            return list(self.opts.features)
        if model.features is not None:
            return model.features
        skip = {*self.keys, *self.group_by}
        return [c for c in frame.columns if c not in skip]

    def _score(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Reject]]:
        name = self.opts.prediction
        absent = [c for c in dict.fromkeys([*self.group_by, *self.keys])
                  if c not in frame.columns]
        if absent:
            problem = f"missing column {', '.join(absent)} (a group_by or key column)"
            return pd.DataFrame({name: []}), [Reject(int(r), absent[0], problem)
                                             for r in frame.index]
        if self.single is not None:
            return score_rows(self.single, frame, self._features(self.single, frame), name)
        pieces: list[pd.DataFrame] = []
        placed: list[np.ndarray] = []  # the positions in frame of each whole piece's rows
        rejects: list[Reject] = []
        groups = frame.groupby(self.group_by, sort=False, dropna=False).indices
        for key, positions in groups.items():
            values = dict(zip(self.group_by, key if isinstance(key, tuple) else (key,),
                              strict=True))
            sub = frame.iloc[positions]
            gaps = [c for c, v in values.items() if plain_value(v) is None]
            if gaps:
                rejects.extend(Reject(int(r), gaps[0], f"missing value in group column "
                                                       f"{gaps[0]}") for r in sub.index)
                continue
            bad = [(c, v, why) for c in self.opts.placeholders
                   if (why := group_value_problem(v := values[c])) is not None]
            if bad:
                column, value, why = bad[0]
                problem = f"group value {str(plain_value(value))!r} is not a plain name ({why})"
                rejects.extend(Reject(int(r), column, problem) for r in sub.index)
                continue
            ref = self._group_ref(values)
            model = self.cache.get(ref)
            if model is None:
                described = ", ".join(f"{k}={plain_value(v)}" for k, v in values.items())
                problem = f"no model for {described} ({ref})"
                rejects.extend(Reject(int(r), "", problem) for r in sub.index)
                continue
            scored, bad = score_rows(model, sub, self._features(model, sub), name)
            pieces.append(scored)
            if len(scored) == len(positions):
                placed.append(positions)
            rejects.extend(bad)
        return _in_input_order(frame, pieces, placed, name), sorted(rejects, key=lambda r: r.row)

    def _group_ref(self, values: dict[str, Any]) -> str:
        names = self.opts.placeholders
        if names:
            return group_ref(self.opts.model, {n: values[n] for n in names})
        return hive_ref(self.opts.model, values)

    def _output(self, frame: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
        keys = [c for c in self.keys if c in frame.columns]
        renamed = {c: f"{self.opts.prediction}_{c}" for c in scored.columns
                   if c in keys or c == JOB_COLUMN}
        if renamed:
            scored = scored.rename(columns=renamed)
        if keys:
            # every row scored (the usual mini-batch): the key columns as they are, no take
            rows = frame[keys] if scored.index.equals(frame.index) \
                else frame.loc[scored.index, keys]
            out = pd.concat([rows, scored], axis=1)
        else:
            out = scored
        return out.reset_index(drop=True)  # write_part adds the job id column

    def _key_text(self, frame: pd.DataFrame, row: int) -> str:
        names = [c for c in dict.fromkeys([*self.keys, *self.group_by]) if c in frame.columns]
        return ", ".join(f"{c}={plain_value(frame.at[row, c])}" for c in names)

    def shutdown(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _in_input_order(frame: pd.DataFrame, pieces: list[pd.DataFrame], placed: list[np.ndarray],
                    name: str) -> pd.DataFrame:
    """The groups' predictions as one frame in the input's row order. When every row of
    every group was scored (the usual mini-batch), the rows are put back by their positions
    (an inverse permutation, no sort); otherwise sorted by row number."""
    if not pieces:
        return pd.DataFrame({name: []})
    whole = pd.concat(pieces)
    if (len(placed) == len(pieces) and len(whole) == len(frame)
            and frame.index.is_monotonic_increasing and frame.index.is_unique):
        order = np.concatenate(placed)
        inverse = np.empty(len(order), dtype=np.intp)
        inverse[order] = np.arange(len(order))
        return whole.take(inverse)
    return whole.sort_index()


def _summary(rejects: list[Reject], total: int, source: str, job_id: str) -> str:
    """One line: how many rows were rejected and the most common reasons."""
    reasons = Counter(_reason(r) for r in rejects)
    shown = "; ".join(f"{text} ({n} row{'s' if n > 1 else ''})"
                      for text, n in reasons.most_common(3))
    more = len(reasons) - 3
    tail = f"; and {more} more problem(s)" if more > 0 else ""
    return (f"{len(rejects)} of {total} row(s) of {source} rejected: {shown}{tail} "
            f"(every row: {rejected_rows(job_id)})")


def _reason(reject: Reject) -> str:
    if reject.problem.startswith("value "):  # the value differs row by row: group by column
        kind = reject.problem.split(" is not ", 1)[-1]
        return f"column {reject.column}: values that are not {kind}"
    if reject.column and not reject.problem.startswith(("missing column", "missing value in")):
        return f"column {reject.column}: {reject.problem}"
    return reject.problem


def tabular_spec(
    model: str,
    *,
    group_by: Sequence[str] | str | None = None,
    keys: Sequence[str] | str | None = None,
    features: Sequence[str] | str | None = None,
    query: str | None = None,
    table: str | None = None,
    prediction: str = "prediction",
    output_format: str | None = None,
    model_cache: int = 1024,
    input_format: str | None = None,
    mini_batch_size: int | str | None = None,
    workers: int = 2,
    error_threshold: int = -1,
    max_retries: int = 2,
    timeout: float = 600.0,
    registry_uri: str | None = None,
    name: str = "tabular",
) -> JobSpec:
    """The job spec of a tabular scoring job (see :class:`TabularOptions` for the options).

    ``mini_batch_size`` is rows per mini-batch, or a size such as ``"64mb"`` (default
    :data:`DEFAULT_ROWS` rows); ``workers`` worker processes score in parallel;
    ``error_threshold`` is how many rows may fail (rejected, or in failed mini-batches)
    before the job fails (-1: any number).
    """
    raw: dict[str, Any] = {"model": model, "prediction": prediction,
                           "model_cache": model_cache}
    for key, value in (("group_by", group_by), ("keys", keys), ("features", features),
                       ("query", query), ("table", table), ("output_format", output_format),
                       ("registry_uri", registry_uri)):
        if value is not None:
            raw[key] = list(value) if isinstance(value, list | tuple) else value
    options = parse_options(raw).model_dump(exclude_defaults=True)
    options["model"] = model.strip()
    settings: dict[str, Any] = {
        "name": name, "kind": "tabular", "options": options,
        "max_concurrency_per_instance": workers, "error_threshold": error_threshold,
        "retry_settings": {"max_retries": max_retries, "timeout": timeout},
    }
    if mini_batch_size is not None:
        settings["mini_batch_size"] = mini_batch_size
    if input_format is not None:
        settings["input_format"] = input_format
    try:
        return JobSpec(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SpecError(f"{where}: {msg} (got {err.get('input')!r})") from None
