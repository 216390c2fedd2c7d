"""BIG-Bench Hard through lm-evaluation-harness (its ``bbh_fewshot``: 3 answer-only examples, greedy
generation, exact match), on a lit_tiny checkpoint, offline.

    python eval/bbh.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from pathlib import Path
from typing import Literal, Optional

from jsonargparse import CLI

from lit_tiny.evaluation.harness import EvalSettings, run_suite


def main(
    checkpoint_dir: Path,
    data_dir: Optional[Path] = Path("data/eval"),
    subtasks: Optional[list[str]] = None,
    batch_size: int = 8,
    max_gen_toks: int = 256,
    device: str = "auto",
    dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    limit: Optional[float] = None,
    bootstrap_iters: int = 100_000,
    seed: int = 1234,
    log_samples: bool = False,
    out_file: Optional[Path] = None,
) -> None:
    """Print exact match (overall and per subtask) beside the paper's rows; write a results JSON.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        data_dir: Folder holding bbh/<subtask>/test.jsonl (tutorials/evaluation.md); null lets lm-eval
            download the data from the Hugging Face hub (needs network).
        subtasks: Some of the 27 subtasks, e.g. [boolean_expressions, navigate] (default: all).
        batch_size: Prompts of equal length decoded together.
        max_gen_toks: Longest answer in tokens (the task stops earlier at a blank line or "Q").
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        dtype: Weights and activations dtype.
        limit: Only the first documents of each subtask (a fraction if below 1), for smoke tests.
        bootstrap_iters: Bootstrap resamples for standard errors of non-mean metrics (0: skip all standard errors).
        seed: Seed of lm-eval's generators.
        log_samples: Also write every request and response to <out_file stem>.samples.json.
        out_file: Results JSON (default: <checkpoint_dir>/eval/bbh.json).
    """
    settings = EvalSettings(data_dir, 3, limit, bootstrap_iters, seed, log_samples)
    run_suite("bbh", checkpoint_dir, settings, subtasks, batch_size, device, dtype, max_gen_toks, out_file)


if __name__ == "__main__":
    CLI(main, as_positional=False)
