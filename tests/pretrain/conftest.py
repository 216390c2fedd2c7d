"""A tiny prepared corpus (prose and code sources plus validation) and a tiny model for pretraining tests,
and ways to run pretrain/tinyllama.py: in a subprocess, in this process, or as a shared reference run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lit_tiny.config import Config
from lit_tiny.data.prepare import prepare_files
from lit_tiny.tokenizer import train_bpe_tokenizer
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S, SAMPLE_TEXTS, import_script
from tests.data.fixtures import code, prose

SCRIPT = REPO_ROOT / "pretrain" / "tinyllama.py"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    english = [prose(rng, rng.randint(20, 80)) for _ in range(400)]
    python = [code(rng, i) for i in range(400)]
    tokenizer = root / "tokenizer"
    train_bpe_tokenizer(english + python + SAMPLE_TEXTS, vocab_size=320, out_dir=tokenizer)
    out = {"tokenizer": tokenizer}
    for name, texts in (("english", english[:360]), ("code", python[:360]), ("val", english[360:] + python[360:])):
        raw = root / "raw" / name
        raw.mkdir(parents=True)
        files = []
        for i in range(0, len(texts), 40):
            f = raw / f"part{i // 40}.jsonl"
            f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i : i + 40]))
            files.append(f)
        prepare_files(files, tokenizer, root / name, source=name, num_workers=1, chunk_tokens=33 * 64)
        out[name] = root / name
    model = Config(name="tiny_test", block_size=32, vocab_size=384, n_layer=2, n_embd=32, n_head=2,
                   n_query_groups=1, intermediate_size=64)
    model.save(root / "model.yaml")
    out["model"] = root / "model.yaml"
    return out


def train_args(corpus: dict[str, Path], out_dir: Path, *extra: str) -> list[str]:
    """Command-line arguments for a few quick steps of the tiny model on the tiny corpus."""
    return [
        "--model", str(corpus["model"]), "--out_dir", str(out_dir), "--precision", "32-true",
        "--data.train_dirs", json.dumps([str(corpus["english"]), str(corpus["code"])]),
        "--data.weights", "[0.7, 0.3]",
        "--data.val_dirs", json.dumps([str(corpus["val"])]),
        "--data.num_workers", "2",
        "--train.global_batch_tokens", str(32 * 16), "--train.micro_batch_size", "4",
        "--train.lr", "0.01", "--train.min_lr", "0.001", "--train.warmup_steps", "2",
        "--eval.interval", "5", "--eval.max_sequences", "16",
        "--checkpoint.interval", "5", "--checkpoint.consolidated_interval", "1000",
        *extra,
    ]


def run_script(args: list[str], timeout: float = SAFETY_TIMEOUT_S, **popen) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=timeout, **popen)
    if result.returncode != 0:
        raise AssertionError(f"pretrain/tinyllama.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def read_metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(out_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in read_metrics(out_dir) if "loss" in m}


@pytest.fixture(scope="session")
def script_module():
    """The pretraining script imported as a module (to call ``setup`` in-process for config checks)."""
    return import_script(SCRIPT, "pretrain_tinyllama")


def train_in_process(script_module, args: list[str]) -> int:
    """Run the script's command line in this process (no interpreter start-up, for the many short runs of
    the damage tests); returns its exit status. The stop-signal handlers it installs are undone after."""
    from lit_tiny.cli import run

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    environment = dict(os.environ)  # Lightning sets MASTER_PORT & co., which later subprocesses must not inherit
    try:
        run(script_module.setup, args)
        return 0
    except SystemExit as done:
        return done.code or 0
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        os.environ.clear()
        os.environ.update(environment)


REFERENCE_STEPS = ("--train.max_steps", "12", "--checkpoint.interval", "6", "--eval.interval", "6")


@pytest.fixture(scope="session")
def reference_runs(corpus, tmp_path_factory) -> dict[str, Path]:
    """12 steps on 1 process and on 2 (same global batch), states at steps 6 and 12: what other world sizes,
    two torchrun nodes and a SLURM job must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    runs = {"one": root / "one", "two": root / "two"}
    run_script(train_args(corpus, runs["one"], "--devices", "1", *REFERENCE_STEPS))
    run_script(train_args(corpus, runs["two"], "--devices", "2", *REFERENCE_STEPS))
    return runs


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo corpus (``lit_tiny.data.demo``), built once per session (~1 minute on 2 cores)."""
    from lit_tiny.data.demo import ensure_demo_corpus

    out = tmp_path_factory.mktemp("demo") / "demo"
    ensure_demo_corpus(out)
    return out
