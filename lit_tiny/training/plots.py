"""The picture of a run: training and validation loss, and the learning rate, against tokens seen.

Drawn from ``metrics.jsonl`` on matplotlib's Agg canvas (no display, no global pyplot state) into the
run folder's ``loss.png``; pretraining refreshes it at every validation.
"""

from __future__ import annotations

import math
from pathlib import Path

from lit_tiny.evaluation.plotting import format_tokens
from lit_tiny.training.run_dir import RunDir


def plot_run(run: RunDir, title: str = "") -> Path:
    """Write ``run.loss_plot`` from the run's metrics and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    rows = run.read_metrics()
    train = [r for r in rows if "loss" in r]
    val = run.validation_curve()
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if train:
        ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], lw=1, color="C0", label="training loss")
    if val:
        ax.plot([r["tokens"] for r in val], [r["val_loss"] for r in val], "o-", ms=4, color="C1",
                label="validation loss")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss (nats per token)")
    ax.xaxis.set_major_formatter(FuncFormatter(format_tokens))
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    if train and "lr" in train[0]:
        lr_ax = ax.twinx()
        lr_ax.plot([r["tokens"] for r in train], [r["lr"] for r in train], lw=0.8, ls="--", color="grey",
                   label="learning rate")
        lr_ax.set_ylabel("learning rate")
        more_lines, more_labels = lr_ax.get_legend_handles_labels()
        lines, labels = lines + more_lines, labels + more_labels
    if lines:
        ax.legend(lines, labels, loc="upper right", fontsize="small")
    last = f"step {train[-1]['step']}" if train else "no steps yet"
    if val:
        last += f", validation loss {val[-1]['val_loss']:.4f} (perplexity {math.exp(val[-1]['val_loss']):.2f})"
    ax.set_title(f"{title or run.root.name}: {last}", fontsize="medium")
    path = run.loss_plot
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path
