"""Train one anomaly detector per (Device, Sensor) on the sensor readings and register them.

Each model is a scikit-learn Pipeline of a StandardScaler and a one-class SVM (RBF kernel)
fitted on that sensor's ``Value`` column, as the reference implementation of "Batch scoring of
Python models on Azure" does; ``predict`` answers 1 for a normal reading and -1 for an anomaly.

By default every model is logged with MLflow's sklearn flavour (signature: one input column
``Value`` of type double) into the workspace's registry as ``sensor-anomaly-{Device}-{Sensor}``
and its new version gets the alias ``production``. With ``--out DIR`` the models are written
to a folder instead, in hive layout ``DIR/Device=1/Sensor=4/`` (an MLflow model folder each, or
a ``model.joblib`` with ``--format joblib``), and the registry is left alone.

Example:
    batchscore init
    python examples/sensors/train.py                       # registers 15 models
    python examples/sensors/train.py --out /tmp/sensor-models
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from batchscore.errors import BatchscoreError, InputError, UsageError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sensors" / "sensor_data.csv"
COLUMNS = ("TS", "Device", "Sensor", "Value")
GROUP = ("Device", "Sensor")
PREFIX = "sensor-anomaly"
EXPERIMENT = "sensor-anomaly"


@dataclass(frozen=True)
class Trained:
    """One fitted model and what it saw."""

    device: int
    sensor: int
    model: Pipeline
    rows: int
    anomalies: int  # training readings the model itself flags (-1)

    @property
    def name(self) -> str:
        return model_name(self.device, self.sensor)


def model_name(device: int, sensor: int, prefix: str = PREFIX) -> str:
    """The registered name of the model of one sensor: ``sensor-anomaly-{Device}-{Sensor}``."""
    return f"{prefix}-{device}-{sensor}"


def load_readings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The readings in ``path`` (a CSV with TS, Device, Sensor, Value), checked."""
    csv = Path(path)
    if not csv.is_file():
        raise InputError(f"sensor data {str(csv)!r} does not exist (give --data PATH)")
    try:
        frame = pd.read_csv(csv)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"sensor data {str(csv)!r} is not a readable CSV: {exc}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"sensor data {str(csv)!r} lacks column(s) {', '.join(missing)}; "
                         f"it has {', '.join(map(str, frame.columns))}")
    for column in GROUP:
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise InputError(f"sensor data {str(csv)!r}: column {column} must hold integers")
    frame["Value"] = pd.to_numeric(frame["Value"], errors="coerce").astype("float64")
    frame = frame.dropna(subset=["Value"])
    if frame.empty:
        raise InputError(f"sensor data {str(csv)!r} has no numeric readings")
    return frame


def train_models(frame: pd.DataFrame, *, nu: float = 0.01,
                 gamma: float | str = "scale") -> list[Trained]:
    """One fitted StandardScaler + OneClassSVM per (Device, Sensor), in key order."""
    if not 0 < nu <= 1:
        raise UsageError(f"--nu must be in (0, 1], got {nu}")
    out: list[Trained] = []
    for (device, sensor), group in frame.groupby(list(GROUP), sort=True):
        values = group[["Value"]]
        model = Pipeline([("scaler", StandardScaler()),
                          ("svm", OneClassSVM(kernel="rbf", nu=nu, gamma=gamma))])
        model.fit(values)
        flagged = int((model.predict(values) == -1).sum())
        out.append(Trained(int(device), int(sensor), model, len(group), flagged))
    return out


def _signature(model: Pipeline) -> Any:
    from mlflow.models import infer_signature

    sample = pd.DataFrame({"Value": [0.0, 1.0]}, dtype="float64")
    return infer_signature(sample, model.predict(sample))


def write_folder(models: list[Trained], out: Path, fmt: str = "mlflow") -> list[Path]:
    """Write each model to ``out/Device=D/Sensor=S/``; refuses to overwrite a model there."""
    import joblib

    if fmt not in ("mlflow", "joblib"):
        raise UsageError(f"--format must be mlflow or joblib, got {fmt!r}")
    written: list[Path] = []
    for t in models:
        folder = out / f"Device={t.device}" / f"Sensor={t.sensor}"
        if folder.exists() and any(folder.iterdir()):
            raise UsageError(f"{folder} already holds a model; choose an empty --out folder")
        if fmt == "joblib":
            folder.mkdir(parents=True, exist_ok=True)
            joblib.dump(t.model, folder / "model.joblib")
        else:
            import mlflow.sklearn
            import sklearn

            folder.parent.mkdir(parents=True, exist_ok=True)
            mlflow.sklearn.save_model(
                t.model, str(folder), signature=_signature(t.model),
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        written.append(folder)
    return written


def register_models(ws: Any, models: list[Trained], *, prefix: str = PREFIX,
                    alias: str = "production", data: str = "") -> list[Any]:
    """Log every model in one MLflow run of the workspace's registry, register each as
    ``{prefix}-{Device}-{Sensor}`` and give the new version ``alias`` (``production`` is
    moved with :func:`batchscore.registry.models.promote`, which keeps the history that
    ``batchscore model rollback`` needs). Returns the registered versions."""
    import mlflow
    import mlflow.sklearn
    import sklearn

    from batchscore.registry.models import (
        artifact_location,
        client,
        get_version,
        promote,
        use_registry,
    )

    use_registry(ws)
    c = client(ws)
    experiment = c.get_experiment_by_name(EXPERIMENT)
    experiment_id = (experiment.experiment_id if experiment is not None else
                     c.create_experiment(EXPERIMENT, artifact_location=(
                         f"{artifact_location(ws)}/{EXPERIMENT}")))
    versions = []
    with mlflow.start_run(experiment_id=experiment_id,
                          tags={"batchscore.example": "sensors", "data": data}) as run:
        params = models[0].model.get_params() if models else {}
        mlflow.log_params({"nu": params.get("svm__nu"), "gamma": params.get("svm__gamma"),
                           "models": len(models)})
        for t in models:
            name = model_name(t.device, t.sensor, prefix)
            info = mlflow.sklearn.log_model(
                t.model, name=f"{t.device}-{t.sensor}", signature=_signature(t.model),
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
            if not c.search_registered_models(f"name = '{name}'"):
                c.create_registered_model(name, tags={"Device": str(t.device),
                                                      "Sensor": str(t.sensor)})
            mv = c.create_model_version(name, info.model_uri, run_id=run.info.run_id, tags={
                "Device": str(t.device), "Sensor": str(t.sensor),
                "training_rows": str(t.rows),
                "metric.training_anomaly_rate": f"{t.anomalies / t.rows:.6g}"})
            if alias == "production":
                versions.append(promote(ws, name, int(mv.version)))
            else:
                c.set_registered_model_alias(name, alias, mv.version)
                versions.append(get_version(ws, f"{name}/{mv.version}"))
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Example: python examples/sensors/train.py --out /tmp/sensor-models")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the readings CSV (default: {DEFAULT_DATA})")
    parser.add_argument("--workspace", default=None,
                        help="workspace folder (default: $BATCHSCORE_WORKSPACE or ./.batchscore)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the models to this folder (hive layout) instead of "
                             "registering them")
    parser.add_argument("--format", choices=("mlflow", "joblib"), default="mlflow",
                        help="with --out: an MLflow model folder (default) or model.joblib")
    parser.add_argument("--prefix", default=PREFIX,
                        help=f"registered names are PREFIX-DEVICE-SENSOR (default {PREFIX})")
    parser.add_argument("--alias", default="production",
                        help="alias given to the new versions (default production)")
    parser.add_argument("--nu", type=float, default=0.01,
                        help="one-class SVM nu: upper bound of the anomaly share (default 0.01)")
    parser.add_argument("--gamma", default="scale",
                        help="RBF kernel gamma: a number, 'scale' (default) or 'auto'")
    args = parser.parse_args(argv)
    try:
        gamma: float | str = args.gamma
        if args.gamma not in ("scale", "auto"):
            try:
                gamma = float(args.gamma)
            except ValueError:
                raise UsageError(f"--gamma must be a number, 'scale' or 'auto', "
                                 f"got {args.gamma!r}") from None
        frame = load_readings(args.data)
        ws = None
        if args.out is None:  # a missing workspace fails before any training
            from batchscore.workspace import open_workspace

            ws = open_workspace(args.workspace)
        models = train_models(frame, nu=args.nu, gamma=gamma)
        for t in models:
            print(f"Device={t.device} Sensor={t.sensor}: {t.rows} readings, "
                  f"{t.anomalies} flagged in training")
        if ws is None:
            for folder in write_folder(models, args.out, args.format):
                print(f"wrote {folder}")
            return 0
        try:
            for v in register_models(ws, models, prefix=args.prefix, alias=args.alias,
                                     data=str(args.data)):
                print(f"registered {v.name} version {v.version} ({', '.join(v.aliases)})")
        finally:
            ws.close()
    except BatchscoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
