"""Evaluate every checkpoint of a training run on the zero-shot commonsense tasks and plot the scores
against tokens seen, like the paper's figure.

Reads ``<run_dir>/checkpoints/step-XXXXXXXX/`` (each with ``progress.json``) and writes
``<run_dir>/eval/step-XXXXXXXX.json``, ``commonsense.csv`` and ``commonsense.png``. Checkpoints already
evaluated with the same settings are skipped, so the command can be re-run while training goes on.

    python eval/training_run.py --run_dir out/tinyllama-120m --data_dir data/eval
"""

from pathlib import Path
from typing import Literal, Optional

from jsonargparse import CLI

from lit_tiny.evaluation.training import evaluate_run


def main(
    run_dir: Path,
    data_dir: Optional[Path] = Path("data/eval"),
    tasks: Optional[list[str]] = None,
    steps: Optional[list[int]] = None,
    overwrite: bool = False,
    batch_size: int = 8,
    device: str = "auto",
    dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    limit: Optional[float] = None,
    seed: int = 1234,
) -> None:
    """Evaluate the run's checkpoints, then write the CSV and PNG.

    Args:
        run_dir: A pretraining run folder (holding checkpoints/step-XXXXXXXX/).
        data_dir: Folder with the task data (tutorials/evaluation.md); null downloads from the hub.
        tasks: Some of the seven commonsense tasks (default: all).
        steps: Only the checkpoints at these steps (default: all).
        overwrite: Re-evaluate checkpoints that already have results.
        batch_size: Sequences per forward pass (right-padded).
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        dtype: Weights and activations dtype.
        limit: Only the first documents of each task (a fraction if below 1), for quick curves.
        seed: Seed of lm-eval's generators.
    """
    evaluate_run(run_dir, data_dir, tasks, steps, overwrite, batch_size, device, dtype, limit, seed)


if __name__ == "__main__":
    CLI(main, as_positional=False)
