"""Run tables from anywhere: a CSV or JSON Lines file with one row per training run, read into ``Run``s so
that every fit works on them. A JSON Lines file written by ``save_runs`` is read as it is.

Columns (``columns`` maps these names to yours, e.g. ``{"params": "N", "loss": "val_loss"}``):

    params   model parameters N, counted as you count them (N under every convention)
    tokens   training tokens D      } one or both; with both, C must be 6ND (within 1%)
    flops    training compute C     }
    loss     final loss, nats per token
    budget   optional: the IsoFLOP group, a FLOP count or any name
    name     optional: the model's name; runs of one model share it (default ``N=<params>``)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lit_tiny.scaling.runs import Run

COLUMNS = ("params", "tokens", "flops", "loss", "budget", "name")
FLOPS_RTOL = 0.01  # how far a row's flops may be from 6 * params * tokens


def read_table(path: str | Path, columns: dict[str, str] | None = None) -> dict[int, Run]:
    """The runs of a ``.csv`` or ``.jsonl`` table, keyed by their line in the file (a CSV's header is line 1).

    ``columns`` maps our column names (``COLUMNS``) to the file's; it does not apply to a ``save_runs`` file.
    Every problem raises a one-line ``ValueError`` naming the file, the line and the column.
    """
    path = Path(path)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ValueError(f"--columns names unknown columns {unknown}; ours are {', '.join(COLUMNS)}")
    if not path.is_file():
        raise FileNotFoundError(f"Run table {path} does not exist")
    if path.suffix not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: a run table must be a .csv or a .jsonl file, not {path.suffix or 'no suffix'!r}")
    rows = list(_csv_rows(path) if path.suffix == ".csv" else _jsonl_rows(path))
    if not rows:
        raise ValueError(f"{path} has no runs")
    first = rows[0][1]
    if path.suffix == ".jsonl" and "n_params_total" in first and "final_val_loss" in first:  # from save_runs
        if columns:
            raise ValueError(f"{path} is a lit_tiny run table (save_runs); --columns applies only to other tables")
        return {line: _checked(path, line, lambda row=row: Run.from_dict(row)) for line, row in rows}
    names = {column: columns.get(column, column) for column in COLUMNS}
    _check_columns(path, list(first), names, columns)
    return {line: _checked(path, line, lambda row=row: _run(row, names)) for line, row in rows}


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{line}: not JSON ({err})") from err
        if not isinstance(row, dict):  # bad data, so a ValueError: the CLI prints those in one line
            raise ValueError(f"{path}:{line}: expected a JSON object of columns, got {text[:50]}")  # noqa: TRY004
        yield line, row


def _check_columns(path: Path, found: list[str], names: dict[str, str], columns: dict[str, str]) -> None:
    """Raise when a required column is missing, naming the file's columns and the --columns fix."""

    def missing(column: str) -> str:
        if column in columns:
            return f"--columns maps {column} to {columns[column]!r}, but {path} has no such column"
        return f"{path} has no {column!r} column"

    listing = f"(its columns: {', '.join(found)})"
    for column in ("params", "loss"):
        if names[column] not in found:
            raise ValueError(f"{missing(column)} {listing}. Name yours: --columns '{{{column}: <column>}}'")
    if names["tokens"] not in found and names["flops"] not in found:
        raise ValueError(
            f"{missing('tokens')} and no {names['flops']!r} column {listing}: give training tokens or FLOPs. "
            "Name yours: --columns '{tokens: <column>}' or --columns '{flops: <column>}'"
        )


def _checked(path: Path, line: int, make: Callable[[], Run]) -> Run:
    """``make()``, with a ``ValueError`` or ``TypeError`` prefixed by ``path:line``."""
    try:
        return make()
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}:{line}: {err}") from err


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _run(row: dict[str, Any], names: dict[str, str]) -> Run:
    """One external row as a ``Run``: N is ``params`` under every convention, and C = 6ND."""

    def value(column: str) -> Any:
        cell = row.get(names[column])
        return None if cell is None or (isinstance(cell, str) and not cell.strip()) else cell

    def number(column: str) -> float | None:
        cell = value(column)
        if cell is None:
            return None
        where = f"column {names[column]!r}" + ("" if names[column] == column else f" ({column})")
        if isinstance(cell, bool) or not isinstance(cell, (str, int, float)) or not _is_number(str(cell)):
            raise ValueError(f"{where}: {cell!r} is not a number")
        if not (math.isfinite(float(cell)) and float(cell) > 0):
            raise ValueError(f"{where} must be a positive finite number, got {cell!r}")
        return float(cell)

    params, tokens, flops, loss = (number(c) for c in ("params", "tokens", "flops", "loss"))
    for column, got in (("params", params), ("loss", loss)):
        if got is None:
            raise ValueError(f"column {names[column]!r} is empty")
    if tokens is None and flops is None:
        raise ValueError(f"give the run's tokens ({names['tokens']!r}) or FLOPs ({names['flops']!r}); both are empty")
    n = round(params)
    if n < 1:
        raise ValueError(f"column {names['params']!r}: {params!r} parameters round to {n}")
    if tokens is None:
        tokens = flops / (6 * n)
    elif flops is None:
        flops = 6 * n * tokens
    elif abs(flops / (6 * n * tokens) - 1) > FLOPS_RTOL:
        raise ValueError(
            f"{names['flops']!r} = {flops:.4g} is not 6 x params x tokens = {6 * n * tokens:.4g} "
            f"({100 * (flops / (6 * n * tokens) - 1):+.1f}%); C is counted as 6ND here: fix the row or give only "
            "one of the two columns"
        )
    budget = value("budget")
    if isinstance(budget, str) and not _is_number(budget):
        budget = budget.strip()  # a name
    elif budget is not None:
        budget = number("budget")
    name = value("name")
    return Run(
        model_name=f"N={n:g}" if name is None else str(name),
        n_params_total=n,
        n_params_non_embedding=n,
        tokens=tokens,
        final_val_loss=loss,
        flops_per_token_exact=flops / tokens,
        flop_budget=budget,
    )
