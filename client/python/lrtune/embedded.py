"""The embedded service: `lrtune serve` as a child of this process.

Without a server, lrtune.RangeTest (and lrtune.connect()) start the
`lrtune` binary's embedded coordinator, without a worker (the script
trains), on a private unix socket, with the job store the CLI's embedded
commands use ($XDG_DATA_HOME/lrtune/jobs.db, else
~/.local/share/lrtune/jobs.db; `db` chooses another). One service per
process, started on first use; it ends when this process closes its stdin,
at exit or when the process dies, however it dies.

The binary is $LRTUNE_BIN, else `lrtune` on PATH. One process serves a
store at a time: a second Python process on the same store uses the first
one's service (its `lrtune serve` prints that one's target) until the
first ends, and then starts its own on next use. Meanwhile `lrtune jobs`,
`watch JOB` and `cancel JOB` in a terminal reach the running service, and
`lrtune range-test` there runs its job through it. With ui=True it also
serves the web dashboard on 127.0.0.1 (`lrtune serve --ui`);
`dashboard_url` is its address, token included. A service that another
process started without the dashboard cannot gain one: ui=True then fails
at once (RuntimeError), saying so, rather than wait for that process.
Its messages (stderr) reach this process's sys.stderr.
"""

import atexit
import collections
import os
import shutil
import subprocess
import sys
import threading
from typing import Optional


def find_binary() -> str:
    """The `lrtune` binary: $LRTUNE_BIN, else `lrtune` on PATH."""
    path = os.environ.get("LRTUNE_BIN") or shutil.which("lrtune")
    if not path:
        raise FileNotFoundError(
            "the lrtune binary is not found: build it (cmake --build build "
            "--target lrtune) and put it on PATH or set LRTUNE_BIN, or pass "
            "server='HOST:PORT'")
    return path


class EmbeddedService:
    """A running `lrtune serve`; `target` is its gRPC target,
    `dashboard_url` the dashboard's address (None without ui)."""

    def __init__(self, db: Optional[str] = None, binary: Optional[str] = None,
                 ui: bool = False):
        args = [binary or find_binary(), "serve"]
        if db:
            args += ["--db", db]
        if ui:
            args.append("--ui")
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        # Its messages go on to this process's sys.stderr (a notebook's
        # cell shows them, where the inherited fd 2 would not), and the
        # last few into the error when it fails to start.
        self._messages = collections.deque(maxlen=20)
        self._relay = threading.Thread(target=self._relay_stderr,
                                       daemon=True)
        self._relay.start()
        line = self._proc.stdout.readline().decode().strip()
        if not line.startswith("unix:"):
            rc = self._proc.wait()
            self._relay.join(timeout=5)
            said = "\n".join(self._messages) or "(it said nothing)"
            raise RuntimeError(f"`{' '.join(args)}` exited with {rc} before "
                               f"serving: {said}")
        self.target = line
        self.db = db
        self.dashboard_url = (self._proc.stdout.readline().decode().strip()
                              if ui else None)

    def _relay_stderr(self):
        for raw in self._proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self._messages.append(text)
            # Whatever sys.stderr does (closed at exit, an encoding that
            # cannot write the text), the pipe is drained: a serve blocked
            # on a full pipe would stop answering.
            try:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
            except Exception:  # pylint: disable=broad-except
                pass

    def ended(self) -> bool:
        """Whether its `lrtune serve` has exited."""
        return self._proc.poll() is not None

    def close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


_lock = threading.Lock()
_shared: Optional[EmbeddedService] = None


def shared_service(db: Optional[str] = None,
                   ui: bool = False) -> EmbeddedService:
    """This process's embedded service, started on first use (a later call
    naming another `db`, or asking for the dashboard of one started without
    it, gets a ValueError)."""
    global _shared
    with _lock:
        if _shared is not None and _shared.ended():
            # It served another process's service, which has ended: a
            # serve of this process's own takes the store over.
            db = db or _shared.db
            ui = ui or _shared.dashboard_url is not None
            _shared = None
        if _shared is None:
            _shared = EmbeddedService(db, ui=ui)
            atexit.register(_shared.close)
        elif db and db != _shared.db:
            raise ValueError(f"the embedded service already runs on "
                             f"{_shared.db or 'the default store'}, not {db}")
        elif ui and _shared.dashboard_url is None:
            raise ValueError("the embedded service already runs without its "
                             "dashboard: pass ui=True on its first use")
        return _shared
