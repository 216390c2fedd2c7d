"""DROP through lm-evaluation-harness (its ``drop`` task: greedy generation until ".", exact match and
F1), 3-shot from the train split, on a lit_tiny checkpoint, offline.

    python eval/drop.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from lit_tiny.cli import run
from lit_tiny.evaluation.harness import suite_main

main = suite_main("drop")

if __name__ == "__main__":
    run(main)
