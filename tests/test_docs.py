"""The commands of README.md and tutorials/*.md, typed as they are written.

Every fenced shell command that runs one of our scripts is parsed by that script's own parser (flags,
values, and the config files it names), and the data tutorial's chain runs end to end on small inputs
in the upstream layouts: tokenizer training, SlimPajama and Starcoderdata preparation into the
documented folders, the paper's config (model shrunk by an override) finding them, and evaluation of
the checkpoint it writes. A stale flag or a drifted path fails here.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonargparse import ArgumentError

import lit_tiny.cli
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S, SAMPLE_TEXTS
from tests.data.fixtures import write_slimpajama, write_starcoder

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "tutorials").glob("*.md"))]
PYTHONS = {"python", "python3", ".venv/bin/python"}
MODULES = {"lit_tiny": "lit_tiny.__main__", "lit_tiny.scaling": "lit_tiny.scaling.__main__"}


def documented_commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every simple command in the file's ```bash blocks: continuation lines joined,
    comments dropped, ``&&`` chains split."""
    lines = path.read_text().splitlines()
    commands, in_block, pending, start = [], False, "", 0
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            in_block = line.strip() in ("```bash", "```sh", "```shell")
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        pending += line.rstrip("\\") + " "
        if line.endswith("\\"):
            continue
        words, pending = shlex.split(pending, comments=True), ""
        command: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", ";", "||", "|"):
                if command:
                    commands.append((start, command))
                command = []
            else:
                command.append(word)
    return commands


def our_invocation(argv: list[str]) -> tuple[str, list[str]] | None:
    """(script path or module, its arguments) when the command runs one of ours, else None."""
    while argv and (re.fullmatch(r"[A-Z_]+=.*", argv[0]) or argv[0] == "srun"):
        argv = argv[1:]
    if not argv:
        return None
    if argv[0] == "torchrun":
        script = next(i for i, word in enumerate(argv) if word.endswith(".py"))
        return argv[script], argv[script + 1:]
    if argv[0] in (".venv/bin/lit-tiny", "lit-tiny"):
        return "lit_tiny", argv[1:]
    if argv[0] in PYTHONS and len(argv) > 1:
        if argv[1] == "-m":
            return (argv[2], argv[3:]) if argv[2] in MODULES else None
        return argv[1], argv[2:]
    return None


def component_of(target: str):
    """What the script or module hands to ``lit_tiny.cli.run``."""
    if target in MODULES:
        return __import__(MODULES[target], fromlist=["COMMANDS"]).COMMANDS
    path = REPO_ROOT / target
    if not path.is_file():
        raise FileNotFoundError(f"{target} does not exist")
    captured = []

    class Captured(Exception):
        pass

    def capture(component, argv=None):
        captured.append(component)
        raise Captured

    original, lit_tiny.cli.run = lit_tiny.cli.run, capture
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Captured:
        pass
    finally:
        lit_tiny.cli.run = original
    if not captured:
        raise AssertionError(f"{target} does not call lit_tiny.cli.run")
    return captured[0]


def check_document(path: Path) -> list[str]:
    """Problems with the commands of one document: 'file:line: command: what is wrong'."""
    problems = []
    for number, argv in documented_commands(path):
        if argv[:2] == ["bash", "install.sh"]:
            extras = set(argv[2].split(",")) if len(argv) > 2 else set()
            known = set(re.findall(r"^(\w+) = \[", (REPO_ROOT / "pyproject.toml").read_text(), re.M))
            if extras - known:
                problems.append(f"{path.name}:{number}: {shlex.join(argv)}: unknown extras {sorted(extras - known)}")
            continue
        invocation = our_invocation(argv)
        if invocation is None:
            continue
        target, args = invocation
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                lit_tiny.cli.check_args(component_of(target), args)
        except SystemExit as done:  # --help and --print_config print and exit
            if done.code not in (0, None):
                problems.append(f"{path.name}:{number}: {shlex.join(argv)}: exit {done.code}")
        except (ArgumentError, FileNotFoundError, ValueError, AssertionError) as err:
            problems.append(f"{path.name}:{number}: {shlex.join(argv)}: {err}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_documented_command_parses(document, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert documented_commands(document) or document.name == "speed.md"
    assert check_document(document) == []


def test_a_broken_flag_or_path_in_a_copy_is_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    text = (REPO_ROOT / "tutorials" / "pretraining.md").read_text()
    assert "--train.lr 3e-4" in text and "--config configs/tinyllama_1b.yaml --devices 8\n" in text
    broken = tmp_path / "pretraining.md"
    broken.write_text(text.replace("--train.lr 3e-4", "--train.lrr 3e-4")
                      .replace("--config configs/tinyllama_1b.yaml --devices 8\n", "--config configs/tinyllama_2b.yaml --devices 8\n"))
    problems = check_document(broken)
    assert len(problems) == 2, problems
    lr_line = next(n for n, line in enumerate(broken.read_text().splitlines(), 1) if "--train.lrr" in line)
    assert problems[0].startswith(f"pretraining.md:{lr_line}: ") and "--train.lrr" in problems[0]
    assert "tinyllama_2b.yaml" in problems[1]


# ------------------------------------------------------------------ the data tutorial's chain, end to end


def runnable(argv: list[str], replace: dict[str, str]) -> list[str]:
    """The documented command with this interpreter, and ``replace`` applied to its words (``--flag value``
    keys replace that flag's value)."""
    target, args = our_invocation(argv)
    head = [sys.executable, "-m", "lit_tiny"] if target == "lit_tiny" else [sys.executable, target]
    out = []
    for i, word in enumerate(args):
        flag = args[i - 1] if i else ""
        out.append(replace.get(f"{flag} {word}", replace.get(word, word)))
    return head + out


def test_the_data_tutorial_chain_runs_into_the_paper_config_and_evaluation(tmp_path, monkeypatch):
    from tests.evaluation.conftest import write_task_data

    work = tmp_path / "work"
    work.mkdir()
    for folder in ("configs", "pretrain", "eval"):
        (work / folder).symlink_to(REPO_ROOT / folder)
    downloads = tmp_path / "downloads"
    write_slimpajama(downloads / "SlimPajama-627B", n_files=3, docs_per_file=60)
    write_slimpajama(downloads / "SlimPajama-627B", n_files=1, docs_per_file=40, seed=5, split="validation")
    write_starcoder(downloads / "starcoderdata", rows=60)
    (work / "my_texts").mkdir()
    for i, text in enumerate(SAMPLE_TEXTS):
        (work / "my_texts" / f"{i}.txt").write_text(text)
    outside = {"/data/SlimPajama-627B": str(downloads / "SlimPajama-627B"),
               "/data/starcoderdata": str(downloads / "starcoderdata"),
               "checkpoints/tinyllama-3t": "tokenizers/mine"}  # the tokenizer the tutorial's first command trains

    data_md = dict(documented_commands(REPO_ROOT / "tutorials" / "data.md"))
    chain = [argv for argv in data_md.values() if our_invocation(argv) and (
        "train_tokenizer" in argv or argv[1].endswith(("prepare_slimpajama.py", "prepare_starcoder.py")))]
    assert chain[0][1] == "train_tokenizer" and len(chain) == 4
    for argv in chain:
        if "--languages" in argv:
            continue  # the subset variant writes the same folder
        result = subprocess.run(runnable(argv, outside), cwd=work, capture_output=True, text=True,
                                timeout=SAFETY_TIMEOUT_S)
        assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-3000:])
    for folder in ("data/slimpajama/train", "data/slimpajama/validation", "data/starcoder/train"):
        assert (work / folder / "prepare_summary.json").is_file(), folder

    # The paper's command from the README, on one CPU process, with its model shrunk.
    readme = [argv for _, argv in documented_commands(REPO_ROOT / "README.md")
              if "configs/tinyllama_1b.yaml" in argv and "--num_nodes" in argv][0]
    tiny = work / "tiny.yaml"
    tiny.write_text("name: tiny_paper\nblock_size: 64\nvocab_size: 32000\nn_layer: 2\nn_embd: 32\nn_head: 2\n"
                    "n_query_groups: 1\nintermediate_size: 64\n")
    shrink = ["--model", str(tiny), "--precision", "32-true", "--train.global_batch_tokens", "1024",
              "--train.micro_batch_size", "4", "--train.max_steps", "3", "--train.warmup_steps", "1",
              "--eval.interval", "3", "--eval.max_sequences", "8", "--data.num_workers", "0"]
    train = runnable(readme, {"--devices 8": "1", "--num_nodes 2": "1"}) + shrink
    result = subprocess.run(train, cwd=work, capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    checkpoint = work / "out" / "tinyllama_1b" / "checkpoints" / "step-00000003"
    assert checkpoint.is_dir() and (checkpoint / "tokenizer.json").is_file()
    assert "data/starcoder/train" in (work / "out" / "tinyllama_1b" / "config.yaml").read_text()

    # The README's evaluation command on that checkpoint.
    write_task_data(work / "data" / "eval")
    evaluate = [argv for _, argv in documented_commands(REPO_ROOT / "README.md") if "eval/commonsense.py" in argv][0]
    command = runnable(evaluate, {"out/demo_cpu/checkpoints/step-00000300": str(checkpoint)})
    result = subprocess.run([*command, "--tasks", "arc_easy", "piqa", "--eval.limit", "2"], cwd=work,
                            capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "| ARC-e |" in result.stdout and (checkpoint / "eval" / "commonsense.json").is_file()
    shutil.rmtree(work / "data" / "eval")
