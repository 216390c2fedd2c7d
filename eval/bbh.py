"""BIG-Bench Hard through lm-evaluation-harness (its ``bbh_fewshot``: 3 answer-only examples, greedy
generation, exact match), on a lit_tiny checkpoint, offline.

    python eval/bbh.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from lit_tiny.cli import run
from lit_tiny.evaluation.harness import suite_main

main = suite_main("bbh")

if __name__ == "__main__":
    run(main)
