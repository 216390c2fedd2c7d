"""``python -m lit_tiny.scaling <calc|fit|ladder> --help``: the calculator, fits of a run table, and ladders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from lit_tiny.cli import run
from lit_tiny.config import Config
from lit_tiny.scaling.accounting import count_params
from lit_tiny.scaling.analysis import analyze
from lit_tiny.scaling.ladder import make_ladder
from lit_tiny.scaling.law import calculate, get_law
from lit_tiny.scaling.table import read_table


def calc(
    compute: Optional[float] = None,
    n_params: Optional[float] = None,
    tokens: Optional[float] = None,
    model: Optional[str] = None,
    law: str = "besiroglu",
    label: Optional[str] = None,
    as_json: bool = False,
) -> None:
    """Compute-optimal allocation and over-training under a parametric law (C = 6ND).

    Give --compute alone, or two of --compute, --n_params and --tokens; --model names a lit_tiny preset
    whose parameter count (under the law's convention) is used as --n_params.

    Args:
        compute: Training FLOPs.
        n_params: Model parameters.
        tokens: Training tokens.
        model: A lit_tiny preset name, e.g. tiny_LLaMA_1b, instead of --n_params.
        law: ``besiroglu`` (Besiroglu et al. 2024 replication) or ``chinchilla`` (Hoffmann et al. 2022).
        label: Name of the run in the printed summary (default: the model name or its size).
        as_json: Print JSON instead of text.
    """
    parametric_law = get_law(law)
    if model is not None:
        if n_params is not None:
            raise ValueError("Give --model or --n_params, not both")
        n_params = count_params(Config.from_name(model), parametric_law.convention)
        label = label or model
    result = calculate(parametric_law, compute=compute, n_params=n_params, tokens=tokens)
    print(json.dumps(result.to_dict(), indent=2) if as_json else result.summary(label))


def fit(
    runs: Path,
    out_dir: Path,
    columns: Optional[dict[str, str]] = None,
    exclude: Optional[list[int]] = None,
    convention: str = "chinchilla",
    isoflop_tolerance: float = 0.1,
    huber_delta: float = 1e-3,
    n_starts: Optional[int] = 100,
    n_bootstrap: int = 100,
) -> None:
    """Fit a run table and write fits_<convention>.json and PNGs into ``out_dir``; print the fitted constants.

    The table is a CSV or JSON Lines file (by its extension) with the columns params, tokens and/or flops
    (C = 6ND), loss, and optionally budget (the IsoFLOP group) and name; or a runs.jsonl from a sweep.

    Args:
        runs: The run table.
        out_dir: Output folder.
        columns: Our column names to yours, e.g. ``{params: N, loss: val_loss}``.
        exclude: File line numbers of rows to leave out (a CSV's header is line 1), e.g. a diverged run.
        convention: ``kaplan``, ``chinchilla``, ``exact`` or ``exact_non_embedding``: how N and C are counted
            in a sweep's runs.jsonl. For other tables N is params and C is 6ND under every convention.
        isoflop_tolerance: Approach 2 without budget labels: a gap in C larger than this factor (0.1 = 10%)
            between neighbouring runs starts a new IsoFLOP group.
        huber_delta: Approach 3 Huber threshold on log-loss residuals.
        n_starts: Approach 3 L-BFGS starts (the best-ranked grid points; null: the whole grid of 4500).
        n_bootstrap: Bootstrap resamples for the Approach 3 confidence intervals.
    """
    table = read_table(runs, columns)
    unknown = sorted(set(exclude or []) - set(table))
    if unknown:
        raise ValueError(
            f"--exclude {' '.join(map(str, unknown))}: {runs} has no run on that line "
            f"(its runs are on lines {min(table)} to {max(table)})"
        )
    for line in sorted(set(exclude or [])):
        run = table.pop(line)
        print(f"excluded line {line}: {run.model_name}, D = {run.tokens:.4g}, loss {run.final_val_loss:.4g}")
    options = {"huber_delta": huber_delta, "n_starts": n_starts, "n_bootstrap": n_bootstrap}
    report = analyze(list(table.values()), out_dir, convention, options, isoflop_tolerance)
    print(f"{report.n_runs} runs of {runs}, {report.convention.name} convention")
    print(report.table())
    print(report.comparison.table())
    for name, reason in report.skipped.items():
        print(f"{name}: skipped ({reason})")
    for path in report.files:
        print(f"wrote {path}")


def ladder(
    smallest: float,
    largest: float,
    n_models: int,
    count: Literal["non_embedding", "total"] = "non_embedding",
    aspect_ratio: float = 32.0,
    tolerance: float = 0.03,
    vocab_size: int = 32000,
    block_size: int = 2048,
    out_dir: Optional[Path] = None,
) -> None:
    """Print (and optionally save as YAML) a ladder of Llama shapes with log-spaced parameter counts.

    Args:
        smallest, largest: Parameter counts of the first and last rung.
        n_models: Rungs.
        count: ``non_embedding`` or ``total`` parameters.
        aspect_ratio: Target width / depth.
        tolerance: Largest relative miss of each rung's count.
        vocab_size, block_size: Of every rung.
        out_dir: Folder for one ``<name>.yaml`` per rung (``Config.from_file`` reads them).
    """
    configs = make_ladder(
        smallest,
        largest,
        n_models,
        count=count,
        aspect_ratio=aspect_ratio,
        tolerance=tolerance,
        vocab_size=vocab_size,
        block_size=block_size,
    )
    print(f"{'name':>16} {'layers':>6} {'width':>6} {'heads':>5} {'kv':>3} {'mlp':>6} {'non-emb':>12} {'total':>12}")
    for c in configs:
        print(
            f"{c.name:>16} {c.n_layer:>6} {c.n_embd:>6} {c.n_head:>5} {c.n_query_groups:>3} {c.intermediate_size:>6} "
            f"{c.num_params(non_embedding=True):>12,} {c.num_params():>12,}"
        )
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            c.save(out_dir / f"{c.name}.yaml")


COMMANDS = {"calc": calc, "fit": fit, "ladder": ladder}


def main() -> None:
    run(COMMANDS)


if __name__ == "__main__":
    main()
