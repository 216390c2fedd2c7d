"""Evaluate every checkpoint of a training run on the zero-shot commonsense tasks and plot the scores
against tokens seen, like the paper's figure.

Reads ``<run_dir>/checkpoints/step-XXXXXXXX/`` (each with ``progress.json``) and writes
``<run_dir>/eval/step-XXXXXXXX.json``, ``commonsense.csv`` and ``commonsense.png``. Checkpoints already
evaluated with the same settings are skipped, so the command can be re-run while training goes on.

    python eval/training_run.py --run_dir out/tinyllama-120m --data_dir data/eval
"""

from pathlib import Path
from typing import Optional

from lit_tiny.cli import run
from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.evaluation.training_run import evaluate_run


def main(run_dir: Path, data_dir: Optional[Path] = Path("data/eval"), tasks: Optional[list[str]] = None,
         steps: Optional[list[int]] = None, overwrite: bool = False, eval: HarnessSettings = HarnessSettings()) -> None:
    """Evaluate the run's checkpoints, then write the CSV and PNG.

    Args:
        run_dir: A pretraining run folder (holding checkpoints/step-XXXXXXXX/).
        data_dir: Folder with the task data (tutorials/evaluation.md); null downloads from the hub.
        tasks: Some of the seven commonsense tasks (default: all).
        steps: Only the checkpoints at these steps (default: all).
        overwrite: Re-evaluate checkpoints that already have results.
        eval: How each checkpoint is run and scored (zero-shot; out_file is not used).
    """
    evaluate_run(run_dir, data_dir, tasks, steps, overwrite, eval)


if __name__ == "__main__":
    run(main)
