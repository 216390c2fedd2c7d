"""Score against tokens seen, like the paper's figure of the commonsense average during training.

Uses matplotlib's object API with the Agg canvas, so it never touches pyplot's global state or a display.
"""

from __future__ import annotations

from pathlib import Path

from lit_tiny.evaluation.reference import (
    COMMONSENSE_CHANCE,
    COMMONSENSE_LABELS,
    COMMONSENSE_REFERENCE,
    COMMONSENSE_TASKS,
)


def format_tokens(value: float, _position: int = 0) -> str:
    """1.5e9 -> '1.5B': tick labels for token counts."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def plot_curve(rows: list[dict], tasks: list[str], out_file: Path, title: str) -> Path:
    """Plot each task's score and their average against ``tokens_seen``; rows as written to the CSV.

    The chance level of the tasks' average is marked; the paper's averages are drawn as dashed lines when
    all seven commonsense tasks were evaluated.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    rows = sorted(rows, key=lambda r: r["tokens_seen"])
    tokens = [r["tokens_seen"] for r in rows]
    fig = Figure(figsize=(9, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for task in tasks:
        ax.plot(
            tokens,
            [r[task] for r in rows],
            marker=".",
            linewidth=1,
            alpha=0.55,
            label=COMMONSENSE_LABELS.get(task, task),
        )
    ax.plot(tokens, [r["average"] for r in rows], marker="o", linewidth=2.5, color="black", label="average")
    chance = sum(COMMONSENSE_CHANCE.get(t, 0.0) for t in tasks) / len(tasks)
    ax.axhline(chance, linestyle="-.", linewidth=1, color="firebrick", label=f"chance (average {chance:.1f})")
    if sorted(tasks) == sorted(COMMONSENSE_TASKS):
        for (name, reference), style in zip(COMMONSENSE_REFERENCE.items(), ("--", ":"), strict=True):
            ax.axhline(reference["average"], linestyle=style, color="grey", label=f"{name} average (paper)")
    ax.xaxis.set_major_formatter(FuncFormatter(format_tokens))
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("score (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=120, bbox_inches="tight")
    return out_file
