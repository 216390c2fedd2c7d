"""The paper's numbers (TinyLlama, arXiv 2401.02385), to print beside ours. All in percent.

Commonsense: zero-shot, lm-evaluation-harness, acc_norm where the task has it (WinoGrande, BoolQ: acc).
Problem solving: InstructEval (MMLU 5-shot generative prefix match, BBH 3-shot, HumanEval 0-shot
pass@1 sampled at T=0.1 with an instruction prefix, DROP 3-shot). lm-eval's ``mmlu`` scores the
log-likelihood of " A" .. " D" instead, and our HumanEval prompt has no instruction prefix, so those
rows compare different metrics; the tables say so.
"""

from __future__ import annotations

COMMONSENSE_TASKS = ("hellaswag", "openbookqa", "winogrande", "arc_challenge", "arc_easy", "boolq", "piqa")

COMMONSENSE_LABELS = {
    "hellaswag": "HellaSwag",
    "openbookqa": "OBQA",
    "winogrande": "WinoGrande",
    "arc_challenge": "ARC-c",
    "arc_easy": "ARC-e",
    "boolq": "BoolQ",
    "piqa": "PIQA",
}

# Accuracy of a random guess, in percent: four choices (HellaSwag, OpenBookQA, ARC: most questions have
# four), or two (WinoGrande, BoolQ, PIQA).
COMMONSENSE_CHANCE = {
    "hellaswag": 25.0,
    "openbookqa": 25.0,
    "winogrande": 50.0,
    "arc_challenge": 25.0,
    "arc_easy": 25.0,
    "boolq": 50.0,
    "piqa": 50.0,
}

COMMONSENSE_REFERENCE = {
    "Pythia-1.0B": {
        "hellaswag": 47.16,
        "openbookqa": 31.40,
        "winogrande": 53.43,
        "arc_challenge": 27.05,
        "arc_easy": 48.99,
        "boolq": 60.83,
        "piqa": 69.21,
        "average": 48.30,
    },
    "TinyLlama 1.1B (3T)": {
        "hellaswag": 59.20,
        "openbookqa": 36.00,
        "winogrande": 59.12,
        "arc_challenge": 30.12,
        "arc_easy": 55.25,
        "boolq": 57.83,
        "piqa": 73.29,
        "average": 52.99,
    },
}

PROBLEM_SOLVING_REFERENCE = {
    "Pythia-1.0B": {"mmlu": 25.70, "bbh": 28.19, "humaneval": 1.83, "drop": 4.25},
    "TinyLlama 1.1B (2.5T)": {"mmlu": 25.92, "bbh": 29.32, "humaneval": 9.15, "drop": 15.45},
}

PROBLEM_SOLVING_METRICS = {
    "mmlu": "InstructEval MMLU, 5-shot, generative prefix match",
    "bbh": "InstructEval BBH, 3-shot, exact match",
    "humaneval": "InstructEval HumanEval, 0-shot pass@1, T=0.1, instruction prefix",
    "drop": "InstructEval DROP, 3-shot",
}
