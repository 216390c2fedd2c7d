"""MMLU through lm-evaluation-harness (its ``mmlu`` task: log-likelihood of " A" .. " D", 5-shot from
the dev split), on a lit_tiny checkpoint, offline. This is not InstructEval's generative MMLU, whose
numbers the paper reports; the printed table says so.

    python eval/mmlu.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from lit_tiny.cli import run
from lit_tiny.evaluation.harness import suite_main

main = suite_main("mmlu")

if __name__ == "__main__":
    run(main)
