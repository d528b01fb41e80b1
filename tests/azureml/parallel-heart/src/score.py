"""An entry script of a parallel job: init() reads its program_arguments with argparse."""

import argparse
import os
from pathlib import Path

import joblib
import pandas as pd


def init():
    global model, args
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--model", type=str)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--label_prefix", type=str)
    parser.add_argument("--output_path", type=str)
    args, _ = parser.parse_known_args()  # Azure adds arguments of its own
    model = joblib.load(Path(args.model) / "model.pkl")
    Path(args.output_path, f"init-{os.getpid()}.txt").write_text(
        f"{os.environ['GREETING']} {args.threshold}\n")


def run(mini_batch):
    results = []
    for path in mini_batch:
        data = pd.read_csv(path)
        scores = model.predict_proba(data)[:, 1]
        for row, score in enumerate(scores):
            label = int(score >= args.threshold)
            results.append(f"{os.path.basename(path)} {row} {args.label_prefix}{label}")
    return results
