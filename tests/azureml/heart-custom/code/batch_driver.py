"""A scoring script as Azure's examples write them: the model is whatever pickle sits one
folder below AZUREML_MODEL_DIR."""

import glob
import os

import joblib
import pandas as pd


def init():
    global model
    found = glob.glob(f"{os.environ['AZUREML_MODEL_DIR']}/*/*.pkl")
    if len(found) != 1:  # beside the model, a stray pickle would be loaded instead
        raise RuntimeError(f"AZUREML_MODEL_DIR holds {found}, not the model alone")
    model = joblib.load(found[-1])


def run(mini_batch):
    results = []
    for path in mini_batch:
        data = pd.read_csv(path)
        for row, label in enumerate(model.predict(data)):
            results.append(f"{os.path.basename(path)} {row} {label}")
    return results
