"""``kgrec predict``: predicted ratings of (user, item) pairs from a trained bundle.

The same read path as ``GET /v1/users/{id}/ratings`` (``recommenders.serving.ratings``): the same
bundle gives the same numbers. Input: a CSV file with a header naming ``user`` and ``item`` (other
columns are ignored). Output: CSV ``user,item,rating,model,baseline`` in the input's order, where
``baseline`` is empty when the model answered in full and says what it did not know otherwise
("unknown user", "unknown item", "unknown user and item": the global mean plus the known bias).
"""

from __future__ import annotations

import csv
from pathlib import Path

import click

from kgrec.cli.output_file import whole_file

COLUMNS = ("user", "item", "rating", "model", "baseline")


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The (user, item) pairs of a CSV file whose header names ``user`` and ``item``."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("user", "item") if c not in (reader.fieldnames or [])]
            if missing:
                raise click.ClickException(f"{path}: the header must name user and item columns "
                                           f"(missing: {', '.join(missing)})")
            pairs = []
            for row in reader:
                user, item = (row.get("user") or "").strip(), (row.get("item") or "").strip()
                if not user or not item:
                    raise click.ClickException(f"{path}, line {reader.line_num}: a user and an item are needed")
                pairs.append((user, item))
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise click.ClickException(f"{path}: not a readable CSV file ({exc})") from exc
    return pairs


@click.command()
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle written by `kgrec train`.")
@click.option("--pairs", "pairs_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="CSV with a header naming user and item columns.")
@click.option("--model", help="A rating model of the bundle (default: the one with the lowest validation RMSE).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def predict(bundle_dir: Path, pairs_file: Path, model: str | None, output: Path | None) -> None:
    """Predict the ratings of user,item pairs (CSV in, user,item,rating,model,baseline out)."""
    from kgrec.recommenders.serving import ratings
    from kgrec.recommenders.serving.server_loading import BundleLoadError, load_server

    pairs = read_pairs(pairs_file)
    try:
        server = load_server(bundle_dir)
        answers = ratings.predict(server, pairs, model)
    except BundleLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    except ratings.NoRatingModel as exc:
        raise click.ClickException(f"{bundle_dir}: {exc}") from exc
    with whole_file(output) as out:
        w = csv.writer(out)
        w.writerow(COLUMNS)
        for a in answers:
            w.writerow([a.user, a.item, repr(a.rating), a.model, a.baseline or ""])
    if output:
        baseline = sum(a.baseline is not None for a in answers)
        click.echo(f"wrote {len(answers)} predictions to {output} ({baseline} from the baseline)", err=True)
