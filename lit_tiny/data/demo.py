"""A demo corpus that every Python installation can build, no downloads: 7:3 English and code.

* English: the reference documentation that ships inside the standard library (``pydoc_data.topics``),
  the docstrings of the standard library's modules, and the licence text.
* Code: the standard library's own Python sources (tests and tools left out), up to ``code_bytes``
  of them; a larger ``code_bytes`` reaches into the standard library's test suite (about 30 MB of
  code in all), which a scaling sweep needs so that no run sees its data more than about once.

Every 25th document goes to validation. A BPE tokenizer of ``vocab_size`` tokens (4,096 by default) is
trained on the training documents, then both parts are prepared with the same code path as SlimPajama
and Starcoderdata. The result is cached in ``out_dir`` and reused while ``manifest.json`` matches.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from lit_tiny.data.prepare import prepare_files

DEMO_VERSION = 1
VOCAB_SIZE = 4096
VALIDATION_EVERY = 25
CODE_BYTES = 4_000_000
SKIPPED_PACKAGES = {"idlelib", "lib2to3", "tkinter", "turtledemo", "site-packages", "ensurepip", "__pycache__"}
TEST_PACKAGES = {"test", "tests"}


def stdlib_sources(tests: bool = False) -> list[Path]:
    """The standard library's Python files, tools left out; its test suites only with ``tests``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts)
        if not SKIPPED_PACKAGES & parts and bool(TEST_PACKAGES & parts) == tests:
            files.append(path)
    return files


def english_documents(sources: list[Path]) -> Iterator[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        topics = {}
    for name in sorted(topics):
        yield topics[name]
    for path in sources:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        docs = [ast.get_docstring(node) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(d for d in docs if d and len(d) > 40)
        if text:
            yield text
    licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if licence.is_file():
        yield licence.read_text(encoding="utf-8", errors="replace")


def code_documents(sources: list[Path], code_bytes: int) -> Iterator[str]:
    total = 0
    for path in sources:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if not text.strip():
            continue
        total += len(text)
        if total > code_bytes:
            return
        yield text


def _write_shards(folder: Path, texts: list[str], shards: int) -> list[Path]:
    """Spread documents over a few jsonl files so that preparation runs in parallel."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"docs_{i}.jsonl" for i in range(shards)]
    for i, path in enumerate(files):
        with open(path, "w", encoding="utf-8") as f:
            for text in texts[i::shards]:
                f.write(json.dumps({"text": text}) + "\n")
    return files


def manifest(vocab_size: int, code_bytes: int) -> dict:
    return {"demo_version": DEMO_VERSION, "python": sys.version.split()[0], "vocab_size": vocab_size,
            "code_bytes": code_bytes}


def demo_paths(out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {
        "tokenizer": out_dir / "tokenizer",
        "train_english": out_dir / "train" / "english",
        "train_code": out_dir / "train" / "code",
        "val_english": out_dir / "val" / "english",
        "val_code": out_dir / "val" / "code",
    }


@dataclass(frozen=True)
class DemoCorpus:
    """Where the demo corpus is built and what it holds (see ``ensure_demo_corpus``)."""

    folder: Path
    vocab_size: int = VOCAB_SIZE
    code_bytes: int = CODE_BYTES

    def ensure(self) -> dict[str, Path]:
        return ensure_demo_corpus(self.folder, self.vocab_size, self.code_bytes)


def ensure_demo_corpus(out_dir: Path, vocab_size: int = VOCAB_SIZE, code_bytes: int = CODE_BYTES,
                       num_workers: int = 2) -> dict[str, Path]:
    """Build the demo corpus in ``out_dir`` unless a build with the same ``vocab_size`` and ``code_bytes``
    is already there (another build there is replaced); return its paths."""
    if not 256 <= vocab_size <= 65536 or code_bytes < 100_000:
        raise ValueError(f"The demo corpus needs 256 <= vocab_size <= 65536 and code_bytes >= 100000, got "
                         f"{vocab_size} and {code_bytes}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (torchrun ranks, parallel tests) may ask at once: one builds, the others wait.
    with FileLock(str(out_dir.parent / f".{out_dir.name}.lock")):
        return _build(out_dir, vocab_size, code_bytes, num_workers)


def _build(out_dir: Path, vocab_size: int, code_bytes: int, num_workers: int) -> dict[str, Path]:
    from lit_tiny.tokenizer import train_bpe_tokenizer

    paths = demo_paths(out_dir)
    manifest_file = out_dir / "manifest.json"
    wanted = manifest(vocab_size, code_bytes)
    if manifest_file.is_file() and json.loads(manifest_file.read_text()) == wanted:
        return paths
    print(f"Building the demo corpus in {out_dir} (first run only; about a minute) ...")
    shutil.rmtree(out_dir, ignore_errors=True)
    raw = out_dir / "raw"
    sources = stdlib_sources()
    splits = {}
    code = code_documents(sources + stdlib_sources(tests=True), code_bytes)
    for part, docs in (("english", list(english_documents(sources))), ("code", list(code))):
        splits[f"train_{part}"] = [d for i, d in enumerate(docs) if i % VALIDATION_EVERY]
        splits[f"val_{part}"] = [d for i, d in enumerate(docs) if not i % VALIDATION_EVERY]
        print(f"  {part}: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f} MB of text")
    raw_files = {name: _write_shards(raw / name, texts, shards=4) for name, texts in splits.items()}

    print(f"  training a {vocab_size}-token BPE tokenizer ...")
    train_bpe_tokenizer(splits["train_english"] + splits["train_code"], vocab_size, paths["tokenizer"])
    for name, files in raw_files.items():
        prepare_files(files, paths["tokenizer"], paths[name], source=f"demo/{name}", num_workers=num_workers,
                      chunk_tokens=513 * 128)
    manifest_file.write_text(json.dumps(wanted))
    return paths
