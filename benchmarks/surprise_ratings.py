"""Surprise's BaselineOnly, SVD and SVD++ (defaults, ``random_state`` 42) on one train/test split.

Run by ``benchmarks/ratings.py`` in a separate interpreter: Surprise 1.1.4 needs numpy < 2, which
kgrec's environment does not have. Needs only ``scikit-surprise`` and numpy there, e.g.

    python -m venv /tmp/venv_surprise
    /tmp/venv_surprise/bin/pip install "numpy<2" "cython<3.1" && \
        /tmp/venv_surprise/bin/pip install --no-build-isolation scikit-surprise==1.1.4

    /tmp/venv_surprise/bin/python benchmarks/surprise_ratings.py TRAIN.csv TEST.csv

Both files: CSV with ``user,item,weight`` columns, the rating in ``weight``. The rating scale is
the training ratings' [min, max]; Surprise clips its estimates to it. Prints one JSON object:
per algorithm RMSE, MAE and fit seconds.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time

import numpy as np
from surprise import SVD, BaselineOnly, Dataset, Reader, SVDpp


def read(path: str) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [(r["user"], r["item"], float(r["weight"])) for r in csv.DictReader(fh)]


def main() -> None:
    train, test = read(sys.argv[1]), read(sys.argv[2])
    low, high = min(r for *_, r in train), max(r for *_, r in train)
    with tempfile.TemporaryDirectory() as tmp:  # Surprise reads "user item rating" lines from a file
        path = f"{tmp}/train.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(train)
        reader = Reader(line_format="user item rating", sep=",", rating_scale=(low, high))
        trainset = Dataset.load_from_file(path, reader=reader).build_full_trainset()
    truth = np.array([r for *_, r in test])
    out = {"scale": [low, high], "train": len(train), "test": len(test)}
    for name, algo in (("BaselineOnly", BaselineOnly(verbose=False)), ("SVD", SVD(random_state=42)),
                       ("SVD++", SVDpp(random_state=42))):
        started = time.perf_counter()
        algo.fit(trainset)
        seconds = time.perf_counter() - started
        est = np.array([p.est for p in algo.test(test)])
        out[name] = {"rmse": float(np.sqrt(np.mean((est - truth) ** 2))), "mae": float(np.mean(np.abs(est - truth))),
                     "fit_s": round(seconds, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
