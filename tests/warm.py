"""Start the tests' ``tuibatch`` processes by forking a process that has already imported everything.

A cold ``python -m tuibatch`` spends about a second of CPU importing google-genai (building the
pydantic models of ``types.py``) before it does anything, and the suite starts ~200 of them: on a
2-core machine that was a quarter of the suite's time. Here one *launcher* per test process
imports google-genai and tuibatch once and forks a child per command line.

The children are real processes: their own pid, signals (``SIGKILL``, ``SIGSTOP`` and
``SIGTERM`` reach them as they would a cold process), exit status (``-signum`` when killed, as
``subprocess`` reports it), stdout and stderr as pipes, the environment and working directory
the test gives, and ``tuibatch.cli.main`` as the program, with an optional crash probe
(``tests/crash_worker.py``). What they skip is the interpreter's start-up and the console script:
``tests/test_cli_demo.py`` and ``test_cold_start_runs_the_same_batch`` run those cold, and
``TUIBATCH_TEST_COLD=1`` runs every test cold. A command with its own ``PYTHONPATH`` (which an
interpreter reads as it starts) is run cold too.

    python tests/warm.py SOCKET     # the launcher; the tests start it (``launcher()``)
"""

from __future__ import annotations

import io
import json
import locale
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLD = os.environ.get("TUIBATCH_TEST_COLD", "") not in ("", "0")
PRELOAD = (
    "google.genai",
    "tuibatch.cli",
    "tuibatch.runner",
    "tuibatch.engine",
    "tuibatch.backends.gemini",
    "tuibatch.backends.gemini_batch",
    "tuibatch.batchmode.run",
    "tuibatch.export",
    "tuibatch.dryrun",
    "tuibatch.store",
    "crash_worker",
)
MAX_MESSAGE = 1 << 20


# ---------------------------------------------------------------------------------- the launcher


def serve(path: str) -> None:
    """Accept ``{argv, env, cwd, probe}`` with two pipe ends; fork; report the pid, later the status."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    sel.register(0, selectors.EVENT_READ, "parent")
    waiting: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = waiting.pop(pid, None)
            if conn is not None:
                rc = os.waitstatus_to_exitcode(status)
                try:
                    conn.send(json.dumps({"rc": rc}).encode())
                except OSError:
                    pass
                conn.close()

    def launch(conn: socket.socket) -> None:
        msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 2)
        if not msg or len(fds) != 2:
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        request = json.loads(msg)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sel.close()
                listener.close()
                for other in (conn, *waiting.values()):
                    other.close()
                os.close(wake_r)
                os.close(wake_w)
                code = _child(request, fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        waiting[pid] = conn
        conn.send(json.dumps({"pid": pid}).encode())

    while True:
        for key, _ in sel.select(timeout=1.0):
            if key.data == "parent":
                if not os.read(0, 4096):  # the test process is gone: so are its workers
                    for pid in waiting:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    return
            elif key.data == "accept":
                conn, _ = listener.accept()
                try:
                    launch(conn)
                except OSError:
                    conn.close()
            else:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
        reap()


def _child(request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: become the requested ``tuibatch`` process; return its exit status."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True, write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    argv = request["argv"]
    sys.argv = ["tuibatch", *argv]
    code = 0
    try:
        from crash_worker import crash_probe

        from tuibatch.cli import main

        probe = crash_probe(request["probe"]) if request["probe"] else None
        main(argv, probe=probe)
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - what the interpreter would print, then status 1
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():  # the interpreter waits for these before exiting
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# -------------------------------------------------------------------------------- the test side


class Launcher:
    """One launcher process per test process, started on first use and gone with it."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tuibatch-warm-")
        self.path = os.path.join(self.dir, "s")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE"))}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "warm.py"), self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=self.dir,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready != b"ready\n":
            raise RuntimeError(f"the warm launcher did not start (said {ready!r})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_launcher: Launcher | None = None


def launcher() -> Launcher:
    global _launcher
    if _launcher is None or not _launcher.alive():
        _launcher = Launcher()
    return _launcher


def stop_launcher() -> None:
    global _launcher
    if _launcher is not None:
        _launcher.close()
        _launcher = None


def _translate(data: bytes) -> str:
    """What ``subprocess`` with ``text=True`` makes of a child's output."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class WarmProcess:
    """The part of ``subprocess.Popen`` the tests use, for a child of the launcher."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: Path | None, probe: str | None
    ) -> None:
        self.args = args
        self.returncode: int | None = None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"argv": args, "env": env, "cwd": str(cwd or os.getcwd()), "probe": probe}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._sock.connect(launcher().path)
            socket.send_fds(self._sock, [json.dumps(request).encode()], [out_w, err_w])
        finally:
            os.close(out_w)
            os.close(err_w)
        reply = self._sock.recv(4096)
        if not reply:
            raise RuntimeError("the warm launcher closed the connection")
        self.pid: int = json.loads(reply)["pid"]
        encoding = locale.getpreferredencoding(False)  # as ``Popen(text=True)`` reads them
        self.stdout = open(out_r, encoding=encoding)  # noqa: SIM115 - closed by communicate/close
        self.stderr = open(err_r, encoding=encoding)  # noqa: SIM115
        self._out, self._err = bytearray(), bytearray()
        self._read = {out_r: self._out, err_r: self._err}

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            ready = selectors.DefaultSelector()
            ready.register(self._sock, selectors.EVENT_READ)
            try:
                if ready.select(timeout):
                    data = self._sock.recv(4096)
                    if not data:
                        raise RuntimeError("the warm launcher went away")
                    self.returncode = json.loads(data)["rc"]
                    self._sock.close()
            finally:
                ready.close()
        return self.returncode

    def poll(self) -> int | None:
        return self._status(0)

    def wait(self, timeout: float | None = None) -> int:
        rc = self._status(timeout)
        if rc is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return rc

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for pipe in (self.stdout, self.stderr):
                if not pipe.closed:
                    sel.register(pipe, selectors.EVENT_READ)
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        self._read[key.fd] += chunk
                    else:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.wait(left)
        return _translate(bytes(self._out)), _translate(bytes(self._err))

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
        if self.returncode is None:
            self._sock.close()


def start(
    args: list[str], *, env: dict[str, str], cwd: Path | None = None, probe: str | None = None
) -> subprocess.Popen[str] | WarmProcess:
    """``tuibatch *args`` (dying at *probe*, ``point[:n]``, if given) as a process of its own."""
    if COLD or env.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):  # decided at start-up
        prefix = [str(HERE / "crash_worker.py"), probe] if probe else ["-m", "tuibatch"]
        return subprocess.Popen(
            [sys.executable, *prefix, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return WarmProcess(args, env, cwd, probe)


def run(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
    probe: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tuibatch *args`` to its end, like ``subprocess.run(capture_output=True, text=True)``."""
    proc = start(args, env=env, cwd=cwd, probe=probe)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(args, proc.returncode or 0, out, err)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    serve(sys.argv[1])
