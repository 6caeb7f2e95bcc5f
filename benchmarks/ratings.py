"""Rating prediction: kgrec's rating models against Surprise's BaselineOnly, SVD and SVD++, one run.

Every dataset there is with explicit ratings, each split per user 80/20 (seed 42):

- ml-latest-small: the acceptance harness's split (``/work/shared/checks/lib/split.py``, users
  with ≥ 5 ratings), read the way ``kgrec load csv`` reads it (ratings in ``weight``, genres as
  item tags);
- synthetic FilmTrust-like graphs (``tests/rating_graphs.py``: 1,500 users, 2,000 items, 0.5–4
  stars, heavy-tailed activity, 40 % of users following a few others), with trust that follows
  taste (``informative``) and with the same followers and out-degrees pointing anywhere
  (``random``): whether ``trustsvd`` beats ``svdpp``, and whether its validation switch keeps
  trust only where it helps.

kgrec's models are fitted as ``kgrec train`` fits them (``fit_models``: ``svdpp``, then
``trustsvd``, which reuses ``svdpp``'s validation chain) on the training part only, and answer the
test pairs through ``kgrec predict``'s read path (``recommenders.serving.ratings.predict``).
Surprise 1.1.4 needs numpy < 2, so it runs in another interpreter on the same CSV files
(``benchmarks/surprise_ratings.py``; ``--surprise-python`` or ``$KGREC_SURPRISE_PYTHON``,
skipped with a note when neither is given).

    PYTHONPATH=. .venv/bin/python benchmarks/ratings.py --surprise-python /path/to/venv/bin/python

Raw numbers: ``benchmarks/results/ratings.json``; the table goes to RESULTS.md's ``ratings`` section.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sections import write_section

from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders import csv_dir
from kgrec.recommenders.bundle.model_bundle import fit_models
from kgrec.recommenders.serving import ratings
from kgrec.recommenders.serving.server import Server
from tests.rating_graphs import planted_ratings, split_rows

ROOT = Path(__file__).resolve().parent
HARNESS = Path("/work/shared/checks/lib/split.py")
#: The split files ``kgrec load csv`` reads, by the harness's names.
FILES = {"train.csv": "interactions.csv", "items.csv": "items.csv", "tags.csv": "tags.csv",
         "item_tags.csv": "item_tags.csv", "user_tags.csv": "taggings.csv", "social.csv": "social.csv"}
FILMTRUST_LIKE = {"users": 1500, "items": 2000, "k": 8, "communities": 20, "community_weight": 0.8,
                  "mean_ratings": 20.0, "min_ratings": 2, "bias_sd": 0.35, "factor_scale": 0.9, "noise": 0.6,
                  "low": 0.5, "high": 4.0, "trust_share": 0.4, "mean_trust": 3.0, "homophily": 0.9, "seed": 0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_avg() -> float:
    return os.getloadavg()[0]


def ml_split(datasets: Path, out: Path) -> Path:
    subprocess.run([sys.executable, str(HARNESS), "ml-latest-small", str(datasets / "ml-latest-small"), str(out)],
                   check=True, capture_output=True)
    return out


def synthetic_split(trust: str, out: Path) -> Path:
    g = planted_ratings(trust=trust, as_weights=True, **FILMTRUST_LIKE)
    train, test = split_rows(g.rows)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with (out / name).open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["user", "item", "weight"])
            w.writerows((g.rows[n][0], g.rows[n][1], g.rows[n][2]) for n in rows)
    with (out / "social.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user", "friend"])
        w.writerows((f.user, f.friend) for f in g.records.follows)
    return out


def read_test(split: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    with (split / "test.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [(r["user"], r["item"]) for r in rows], np.array([float(r["weight"]) for r in rows])


def kgrec_models(split: Path) -> dict:
    """Fit the rating models on the training part (as ``kgrec train``) and answer the test pairs."""
    with tempfile.TemporaryDirectory() as tmp:
        for src, dst in FILES.items():
            if (split / src).exists() and sum(1 for _ in (split / src).open(encoding="utf-8")) > 1:
                (Path(tmp) / dst).write_bytes((split / src).read_bytes())
        snapshot = build_snapshot(csv_dir.load(tmp).records)
    names = ["svdpp", *(["trustsvd"] if snapshot.follows.nnz else [])]
    seconds: dict[str, float] = {}
    load_before = load_avg()
    models = fit_models(snapshot, names, progress=lambda n, s: seconds.__setitem__(n, s))
    server = Server(snapshot, models, [*names, "popularity"])
    pairs, truth = read_test(split)
    out: dict = {"ratings": int(snapshot.interactions.nnz), "follows": int(snapshot.follows.nnz),
                 "load_before": round(load_before, 1), "load_after": round(load_avg(), 1)}
    for name in names:
        started = time.perf_counter()
        answers = ratings.predict(server, pairs, name)
        predict_s = time.perf_counter() - started
        p = np.array([a.rating for a in answers])
        entry = models[name].manifest_entry() or {}
        out[name] = {"rmse": float(np.sqrt(np.mean((p - truth) ** 2))), "mae": float(np.mean(np.abs(p - truth))),
                     "fit_s": round(seconds[name], 1), "predict_s": round(predict_s, 2),
                     "baseline_pairs": sum(a.baseline is not None for a in answers),
                     "n_iter": entry.get("n_iter"), "trust_used": entry.get("trust_used"),
                     "validation_rmse": entry.get("validation_rmse"), "fit_parts_s": entry.get("seconds")}
    out["default"] = ratings.rating_model(server)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def surprise(python: str | None, split: Path) -> dict | None:
    if not python:
        return None
    done = subprocess.run([python, str(ROOT / "surprise_ratings.py"), str(split / "train.csv"),
                           str(split / "test.csv")], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    head = ("| dataset | ratings (train) | Surprise BaselineOnly | Surprise SVD | Surprise SVD++ | `svdpp` | "
            "`trustsvd` | best kgrec ÷ best Surprise | `svdpp` fit s | `trustsvd` fit s | chosen |")
    lines = [head, "|" + "---|" * 11]

    def cell(d: dict | None) -> str:
        return "–" if d is None else f"{d['rmse']:.4f} / {d['mae']:.4f}"

    for name, r in results.items():
        s = r.get("surprise") or {}
        k = r["kgrec"]
        best_s = min((s[a]["rmse"] for a in ("BaselineOnly", "SVD", "SVD++") if a in s), default=None)
        best_k = min(k[m]["rmse"] for m in ("svdpp", "trustsvd") if m in k)
        chosen = ", ".join(f"{m}: {k[m]['n_iter']} iterations" + (", trust kept" if k[m]["trust_used"] else "")
                           for m in ("svdpp", "trustsvd") if m in k)
        ratio = f"{best_k / best_s:.3f}" if best_s else "–"
        trust_fit = k["trustsvd"]["fit_s"] if "trustsvd" in k else "–"
        lines.append(f"| {name} | {k['ratings']:,} | {cell(s.get('BaselineOnly'))} | {cell(s.get('SVD'))} | "
                     f"{cell(s.get('SVD++'))} | {cell(k.get('svdpp'))} | {cell(k.get('trustsvd'))} | {ratio} | "
                     f"{k['svdpp']['fit_s']} | {trust_fit} | {chosen} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/shared/datasets")))
    ap.add_argument("--surprise-python", default=os.environ.get("KGREC_SURPRISE_PYTHON"),
                    help="an interpreter with scikit-surprise 1.1.4 and numpy < 2 (see surprise_ratings.py)")
    ap.add_argument("--only", default="ml-latest-small,synthetic-informative,synthetic-random")
    ap.add_argument("--no-section", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="kgrec-ratings-") as tmp:
        for name in args.only.split(","):
            log(f"{name}: split (load {load_avg():.1f})")
            split = (ml_split(args.datasets, Path(tmp) / name) if name == "ml-latest-small"
                     else synthetic_split(name.split("-", 1)[1], Path(tmp) / name))
            log(f"{name}: Surprise")
            peer = surprise(args.surprise_python, split)
            log(f"{name}: kgrec")
            results[name] = {"surprise": peer, "kgrec": kgrec_models(split)}
            log(f"{name}: {json.dumps(results[name])}")
    out = ROOT / "results" / "ratings.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1), encoding="utf-8")
    text = table(results)
    print(text)
    if not args.no_section:
        note = ("Produced by `benchmarks/ratings.py` on " + time.strftime("%Y-%m-%d") + " (2 shared cores; the "
                "load averages are in `benchmarks/results/ratings.json`). RMSE / MAE on each split's test pairs; "
                "Surprise 1.1.4 with defaults (`random_state` 42) in its own interpreter on the same files." +
                ("" if args.surprise_python else " Surprise was not run (no --surprise-python)."))
        write_section("ratings", note + "\n\n" + text)


if __name__ == "__main__":
    main()
