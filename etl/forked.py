"""A call in a forked child process: the runner's steps, and the extract's station side.

Forking keeps the modules, settings and patches of this process as they are (nothing is imported
again), and the child's memory goes back to the system when it ends. The child dies with its parent, as
one process would have died whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine

from core.errors import GrowWowError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)


class ChildDied(GrowWowError):
    """The child ended without an answer: killed (by the kernel when memory ran out, or by hand)."""


class CallFailed(GrowWowError):
    """The child's call raised an error that could not be sent back as itself."""


class Forked:
    """`call(*args)` in a forked child process, started at once. The child first runs `prepare(*args)`
    (work that may be done ahead, such as loading models), then waits for `go()` before the call;
    `result()` returns the call's value or raises its error here. The child's connections to `engine`
    are its own (the parent's pooled ones stay the parent's)."""

    def __init__(
        self,
        call: Callable[..., Any],
        *args,
        prepare: Callable[..., None] | None = None,
        engine: Engine | None = None,
        name: str | None = None,
    ):
        fork = multiprocessing.get_context("fork")
        self.pipe, theirs = fork.Pipe()
        self.child = fork.Process(
            target=_child, args=(call, args, prepare, engine, theirs, os.getpid()), name=name
        )
        self.child.start()
        theirs.close()
        self._told = False

    def go(self) -> None:
        """Let the call start (if it has not already)."""
        if not self._told:
            self._told = True
            with contextlib.suppress(OSError):  # it died: result() says how
                self.pipe.send(True)

    def result(self) -> Any:
        """Wait for the call; its value, or its error raised here, or ChildDied."""
        self.go()
        died = False
        try:
            value, error = self.pipe.recv()
        except (EOFError, ConnectionResetError):  # it died before it could answer (reset: with go unread)
            value, error, died = None, None, True
        except BaseException:  # interrupted here: the call is not to go on without us
            self.child.kill()
            raise
        finally:
            self.pipe.close()
            self.child.join()
        if died:
            raise ChildDied(_death(self.child.exitcode))
        if error is not None:
            raise error
        return value

    def cancel(self) -> None:
        """The call is not to run after all."""
        if not self._told:
            self._told = True
            with contextlib.suppress(OSError):
                self.pipe.send(False)
        self.pipe.close()
        self.child.join(timeout=10)
        if self.child.is_alive():  # still preparing, or running
            self.child.kill()
            self.child.join()


def _child(
    call: Callable[..., Any],
    args: tuple,
    prepare: Callable[..., None] | None,
    engine: Engine | None,
    pipe: Connection,
    parent: int,
) -> None:
    _die_with(parent)
    if engine is not None:
        engine.dispose(close=False)
    if prepare is not None:
        try:
            prepare(*args)
        except Exception:  # the call meets the same trouble itself, and says so
            log.debug("preparing %s failed; the call will say why", call.__name__, exc_info=True)
    if not pipe.recv():
        return
    try:
        outcome = (call(*args), None)
    except Exception as exc:
        if not isinstance(exc, GrowWowError):
            log.exception("%s failed", call.__name__)  # the traceback is known only here
        outcome = (None, _portable(exc))
    pipe.send(outcome)
    pipe.close()


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (a lock the parent held would otherwise
    stay held by our copy of its connection)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the process group's signal must do
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)


def _portable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else a CallFailed saying what it was."""
    try:
        return pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own object, here and back)
    except Exception:
        return CallFailed(f"{type(exc).__name__}: {exc}".splitlines()[0])


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        signame = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {signame}{hint}"
    return f"ended without an answer (exit status {exitcode})"
