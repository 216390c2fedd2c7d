"""Zero-shot commonsense reasoning, as in the paper: HellaSwag, OpenBookQA, WinoGrande, ARC-Challenge,
ARC-Easy, BoolQ and PIQA through lm-evaluation-harness, on a lit_tiny checkpoint, offline.

    python eval/commonsense.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from lit_tiny.cli import run
from lit_tiny.evaluation.harness import suite_main

main = suite_main("commonsense")

if __name__ == "__main__":
    run(main)
