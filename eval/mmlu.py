"""MMLU through lm-evaluation-harness (its ``mmlu`` task: log-likelihood of " A" .. " D", 5-shot from
the dev split), on a lit_tiny checkpoint, offline. This is not InstructEval's generative MMLU, whose
numbers the paper reports; the printed table says so.

    python eval/mmlu.py --checkpoint_dir checkpoints/tinyllama-3t --data_dir data/eval
"""

from pathlib import Path
from typing import Literal, Optional

from jsonargparse import CLI

from lit_tiny.evaluation.harness import EvalSettings, run_suite


def main(
    checkpoint_dir: Path,
    data_dir: Optional[Path] = Path("data/eval"),
    subjects: Optional[list[str]] = None,
    num_fewshot: int = 5,
    batch_size: int = 8,
    device: str = "auto",
    dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    limit: Optional[float] = None,
    bootstrap_iters: int = 100_000,
    seed: int = 1234,
    log_samples: bool = False,
    out_file: Optional[Path] = None,
) -> None:
    """Print MMLU accuracy (overall and per category) beside the paper's rows; write a results JSON.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        data_dir: Folder holding mmlu/<subject>/test.jsonl and dev.jsonl (tutorials/evaluation.md);
            null lets lm-eval download cais/mmlu from the Hugging Face hub (needs network).
        subjects: Some of the 57 subjects, e.g. [abstract_algebra, anatomy] (default: all).
        num_fewshot: Examples per prompt, the first ones of the subject's dev split.
        batch_size: Sequences per forward pass (right-padded).
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        dtype: Weights and activations dtype.
        limit: Only the first documents of each subject (a fraction if below 1), for smoke tests.
        bootstrap_iters: Bootstrap resamples for standard errors of non-mean metrics (0: skip all standard errors).
        seed: Seed of lm-eval's generators and of the few-shot sampler.
        log_samples: Also write every request and response to <out_file stem>.samples.json.
        out_file: Results JSON (default: <checkpoint_dir>/eval/mmlu.json).
    """
    settings = EvalSettings(data_dir, num_fewshot, limit, bootstrap_iters, seed, log_samples)
    run_suite("mmlu", checkpoint_dir, settings, subjects, batch_size, device, dtype, out_file=out_file)


if __name__ == "__main__":
    CLI(main, as_positional=False)
