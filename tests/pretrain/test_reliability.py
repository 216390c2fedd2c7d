"""Preemption-proof runs, through the real CLI: signals to the whole process group, kills inside a save,
one run per folder, the settings history, damaged and hostile states, two nodes on loopback, SLURM."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lit_tiny.checkpoint import load_model
from lit_tiny.files import write_manifest
from lit_tiny.training.run_dir import RunDir, RunLock
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S, wait_for
from tests.pretrain.conftest import (
    REFERENCE_STEPS,
    SCRIPT,
    read_metrics,
    run_script,
    train_args,
    train_in_process,
    train_losses,
)

LONG = ("--train.max_steps", "100000", "--checkpoint.interval", "100000", "--eval.interval", "100000")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("devices, signum", [(1, signal.SIGTERM), (2, signal.SIGUSR1)], ids=["1-SIGTERM", "2-SIGUSR1"])
def test_a_stop_signal_to_the_whole_group_saves_and_resumes_bitwise(corpus, tmp_path, devices, signum):
    """What SLURM and ``kill -TERM -PGID`` deliver: the signal reaches the launcher, every rank and every
    dataloader worker. The run saves at the next step, exits 0, and resumes to the same losses to the bit."""
    out = tmp_path / "run"
    args = train_args(corpus, out, "--devices", str(devices), *LONG)
    process = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: (out / "metrics.jsonl").is_file() and len(read_metrics(out)) >= 3, "3 logged steps", process)
    os.killpg(process.pid, signum)
    stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT_S)
    assert process.returncode == 0, stderr[-3000:]
    assert f"Stopped by {signal.Signals(signum).name} after step" in stdout and "Traceback" not in stderr
    (state,) = RunDir(out).states()
    stopped = int(state.name.split("-")[1])
    assert stopped >= 3 and max(train_losses(out)) == stopped

    end = str(stopped + 3)
    resumed = run_script(train_args(corpus, out, "--devices", str(devices), *LONG, "--resume", "auto",
                                    "--train.stop_at_step", end))
    assert f"Resuming from {state}" in resumed.stdout
    straight = tmp_path / "straight"
    run_script(train_args(corpus, straight, "--devices", str(devices), *LONG, "--train.stop_at_step", end))
    assert len([m for m in read_metrics(out) if "loss" in m]) == stopped + 3  # each step logged once
    assert train_losses(out) == train_losses(straight)  # bit for bit


def killing_save(step: int) -> str:
    """Python code that runs the script with every consolidated save of ``step`` killed (SIGKILL) after its
    files are written into the temporary folder, before the rename."""
    return f"""
import os, runpy, signal, sys
import lit_tiny.checkpoint as checkpoint
original = checkpoint.atomic_write_dir
def atomic_write_dir(out_dir, fill):
    if out_dir.name == "step-{step:08d}":
        tmp = out_dir.with_name("." + out_dir.name + ".tmp-killed")
        tmp.mkdir(parents=True)
        fill(tmp)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(out_dir, fill)
checkpoint.atomic_write_dir = atomic_write_dir
sys.argv[0] = {str(SCRIPT)!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_kill_inside_the_final_save_is_repaired_and_a_finished_run_is_left_alone(corpus, tmp_path, script_module):
    out = tmp_path / "run"
    args = train_args(corpus, out, "--devices", "1", "--train.max_steps", "4", "--checkpoint.interval", "2")
    killed = subprocess.run([sys.executable, "-c", killing_save(4), *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=SAFETY_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run = RunDir(out)
    assert run.latest_state() == run.state_path(4) and not run.checkpoint_path(4).exists()
    assert (run.checkpoints_dir / ".step-00000004.tmp-killed").is_dir() and run.read_summary() is None

    # A model change is refused, naming what differs; an lr change is accepted and recorded.
    wider = tmp_path / "wider.yaml"
    wider.write_text(Path(corpus["model"]).read_text().replace("n_embd: 32", "n_embd: 64"))
    with pytest.raises(ValueError, match=r"may not change on resume: model.n_embd: 32 -> 64\. Restore them"):
        script_module.setup(model=str(wider), out_dir=out, devices=1, resume="auto",
                            train=script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=4, max_steps=4),
                            data=script_module.DataArgs(train_dirs=[corpus["english"], corpus["code"]],
                                                        weights=[0.7, 0.3], val_dirs=[corpus["val"]]))
    resumed = run_script([*args, "--resume", "auto", "--train.lr", "0.02"])
    assert "Writing the consolidated checkpoint of step 4, which the last launch did not finish" in resumed.stdout
    assert "removed" in resumed.stdout and not (run.checkpoints_dir / ".step-00000004.tmp-killed").exists()
    assert "train.lr: 0.01 -> 0.02" in resumed.stdout
    (entry,) = [json.loads(line) for line in run.history_file.read_text().splitlines()]
    assert entry["changes"] == ["train.lr: 0.01 -> 0.02"] and entry["resumed_at_step"] == 4 and entry["time"]
    assert "lr: 0.01" in run.config_file.read_text()  # the first launch's record is kept
    summary = run.read_summary()
    assert summary["step"] == 4 and Path(summary["final_checkpoint"]) == run.checkpoint_path(4)
    assert load_model(run.checkpoint_path(4)).config.name == "tiny_test"

    # Launched again, the finished run says so and changes nothing.
    before = snapshot(out)
    again = run_script([*args, "--resume", "auto", "--train.lr", "0.02"])
    assert f"{out} holds a finished run: step 4 of 4" in again.stdout
    assert snapshot(out) == before

    # Files and folders get ordinary permissions (the umask's), safetensors included.
    umask = os.umask(0)
    os.umask(umask)
    for path in [*run.state_path(4).rglob("*"), *run.checkpoint_path(4).rglob("*"), run.state_path(4)]:
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~umask, path


def test_one_run_per_folder_and_a_stale_lock_is_taken_over(corpus, tmp_path):
    out = tmp_path / "run"
    holder = RunLock(RunDir(out))
    holder.acquire()  # this test process stands for a live run
    try:
        command = [sys.executable, str(SCRIPT), *train_args(corpus, out, "--devices", "1", "--train.max_steps", "1")]
        refused = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    finally:
        holder.release()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert f"belongs to a live run (pid {os.getpid()} on {socket.gethostname()}" in error and "run.lock" in error
    assert sorted(p.name for p in out.iterdir()) == []  # nothing was written

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "run.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout), "started": "then"}))
    taken = run_script(train_args(corpus, out, "--devices", "1", "--train.max_steps", "1"))
    assert f"took over {out / 'run.lock'}: its run (pid {int(gone.stdout)}" in taken.stdout
    assert not (out / "run.lock").exists() and RunDir(out).read_summary()["step"] == 1


# ------------------------------------------------------------------ damaged and hostile states


@pytest.fixture(scope="module")
def damage_reference(corpus, script_module, tmp_path_factory):
    """6 steps in this process, states at steps 2, 4 and 6: the losses every resume must reproduce."""
    out = tmp_path_factory.mktemp("damage") / "reference"
    args = train_args(corpus, out, "--devices", "1", "--train.max_steps", "6", "--checkpoint.interval", "2",
                      "--checkpoint.keep_last", "3", "--eval.interval", "100", "--data.num_workers", "0")
    assert train_in_process(script_module, args) == 0
    return out, args


def older_run(reference: Path, args: list[str], into: Path) -> tuple[Path, list[str]]:
    """The reference run as it stood after step 4: states at 2 and 4, metrics up to 4."""
    shutil.copytree(reference, into, ignore=shutil.ignore_patterns("summary.json", "checkpoints", "step-00000006"))
    metrics = [m for m in read_metrics(into) if m["step"] <= 4]
    (into / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return into, [into.as_posix() if a == reference.as_posix() else a for a in args]


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garble":
        path.write_bytes(os.urandom(len(data)))
    elif how == "flip":  # 4 KiB (at most a quarter of the file) inside the payload, past a safetensors header
        start = len(data) // 2
        span = min(4096, len(data) // 4)
        data[start : start + span] = bytes(b ^ 0xFF for b in data[start : start + span])
        path.write_bytes(bytes(data))
    elif how == "delete":
        path.unlink()


STATE_FILES = ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "meta.json", "manifest.json"]


@pytest.mark.parametrize("how", ["truncate", "garble", "flip", "delete"])
@pytest.mark.parametrize("name", STATE_FILES)
def test_a_damaged_newest_state_is_named_moved_aside_and_the_older_one_resumes_bitwise(
        damage_reference, script_module, tmp_path, capsys, name, how):
    reference, args = damage_reference
    out, args = older_run(reference, args, tmp_path / "run")
    damage(out / "train_state" / "step-00000004" / name, how)
    capsys.readouterr()
    assert train_in_process(script_module, [*args, "--resume", "auto"]) == 0
    printed = capsys.readouterr().out
    (warning,) = [line for line in printed.splitlines() if line.startswith("warning: ")]
    assert str(out / "train_state" / "step-00000004" / name) in warning and "Moved step-00000004 aside" in warning
    assert f"Resuming from {out / 'train_state' / 'step-00000002'}" in printed
    assert len(list((out / "train_state").glob("damaged-step-00000004-*"))) == 1  # kept, never deleted
    expected = {s: v for s, v in train_losses(reference).items() if s > 2}
    assert {s: v for s, v in train_losses(out).items() if s > 2} == expected  # bit for bit


class Payload:
    """Unpickling this writes a marker file: what a hostile state would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", STATE_FILES)
def test_a_planted_pickle_is_never_unpickled(damage_reference, script_module, tmp_path, capsys, name):
    """Even with the manifest rewritten to match it, a pickle planted in a state is refused by name."""
    reference, args = damage_reference
    out, args = older_run(reference, args, tmp_path / "run")
    state = out / "train_state" / "step-00000004"
    marker = tmp_path / "payload_ran"
    (state / name).write_bytes(pickle.dumps(Payload(marker)))
    if name != "manifest.json":
        write_manifest(state)
    capsys.readouterr()
    assert train_in_process(script_module, [*args, "--resume", str(state)]) == 1
    error = capsys.readouterr().err
    assert str(state / name) in error and error.startswith("error: ") and error.count("\n") == 1
    assert not marker.exists()


# ------------------------------------------------------------------ other launchers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_nodes_on_loopback_train_what_one_node_of_two_trains(corpus, reference_runs, tmp_path):
    out = tmp_path / "two_nodes"
    port = str(free_port())
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--node_rank",
         str(rank), "--master_addr", "127.0.0.1", "--master_port", port, str(SCRIPT),
         *train_args(corpus, out, "--devices", "1", "--num_nodes", "2", *REFERENCE_STEPS)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=SAFETY_TIMEOUT_S) for node in nodes]
    for node, (stdout, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-3000:]
    assert "devices (world size)      2" in outputs[0][0] and "gradient accumulation     2" in outputs[0][0]
    assert train_losses(out) == pytest.approx(train_losses(reference_runs["two"]), abs=1e-6)
    assert RunDir(out).states() == [RunDir(out).state_path(6), RunDir(out).state_path(12)]


def test_a_two_task_slurm_job_is_detected_and_trains_the_same(corpus, reference_runs, tmp_path):
    out = tmp_path / "slurm"
    port = str(free_port())
    tasks = []
    for rank in (0, 1):
        env = {**os.environ, "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
               "SLURM_NODEID": "0", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_JOB_ID": "4242",
               "SLURM_JOB_NAME": "lit_tiny_test", "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port}
        tasks.append(subprocess.Popen([sys.executable, str(SCRIPT), *train_args(corpus, out, "--devices", "2",
                                                                               *REFERENCE_STEPS)],
                                      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [task.communicate(timeout=SAFETY_TIMEOUT_S) for task in tasks]
    for task, (stdout, stderr) in zip(tasks, outputs):
        assert task.returncode == 0, stderr[-3000:]
    # Lightning read the ranks from SLURM's variables: each task is one rank, none started another process.
    for rank, (stdout, stderr) in enumerate(outputs):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in stdout + stderr
        assert f"GLOBAL_RANK: {1 - rank}," not in stdout + stderr
    assert train_losses(out) == pytest.approx(train_losses(reference_runs["two"]), abs=1e-6)
