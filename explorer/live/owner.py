"""Who acts on a run, and where the run is.

One thread owns the model at a time: while a run trains (or is followed) that is its thread; otherwise it is the
caller, holding the owner's lock. Every command from another thread is a closure queued to the owning thread and
run *between two steps*; its outcome comes back as a future. `stop` alone is a flag, a request the loop reads between
steps. The run's state is written only by the owner, so it never races."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

from explorer.live.state import RunState


class Owner:
    """The owning thread of a run, its queued commands and its `RunState`, with the message the views show."""

    def __init__(self) -> None:
        self.state = RunState.IDLE
        self.error: BaseException | None = None
        self.message, self.message_is_error = "", False
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()  # held by a caller acting on the run while no thread owns it
        self._owned = False  # a thread owns the run: commands are queued to it
        self._holder: threading.Thread | None = None  # the thread that owns it (it runs its own commands at once)
        self._stop = threading.Event()
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def advancing(self) -> bool:
        """The model changes from one moment to the next (training, or following a run)."""
        return self._owned and self.state in (RunState.RUNNING, RunState.FOLLOWING)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self, body: Callable[[], None], state: RunState, name: str, busy: str,
              check: Callable[[], None] = lambda: None, on_end: Callable[[], object] = lambda: None,
              failure: str = "") -> None:
        """Run ``body`` in a new thread that owns the run in ``state``; refused with ``busy`` if a thread owns it,
        or with what ``check`` raises. Whatever way ``body`` ends, `RunState` says how (stopped, finished or failed,
        the error prefixed with ``failure``), the queued commands run, and ``on_end`` publishes the last picture."""
        with self._lock:
            self._begin(state, busy, check)
            self._thread = self._holder = threading.Thread(target=self._main, args=(body, on_end, failure),
                                                           name=name, daemon=True)
            self._thread.start()

    def adopt(self, state: RunState, busy: str) -> None:
        """The calling thread owns the run in ``state`` from now on, until it calls `end` (a loop of the user's own,
        which runs the queued commands when it calls in between two steps); refused with ``busy`` if owned."""
        with self._lock:
            self._begin(state, busy)
            self._holder = threading.current_thread()

    def end(self, error: BaseException | None, on_end: Callable[[], object] = lambda: None,
            failure: str = "") -> None:
        """The owning loop ended, with ``error`` if it raised one: `RunState` says how (stopped, finished or failed,
        the error prefixed with ``failure``), the queued commands run, ``on_end`` publishes the last picture, and
        callers act themselves from here on."""
        if error is None:
            self.state = RunState.STOPPED if self._stop.is_set() else RunState.FINISHED
        else:
            self._fail(error, failure + str(error))
        with self._lock:  # from here on callers act themselves: give up ownership with no command left behind
            self._owned = False
            self.run_commands()
            try:
                on_end()
            except Exception as last:  # a failed last picture must not hide how the run ended
                self._fail(self.error or last, self.message or str(last))

    @property
    def owned(self) -> bool:
        """A thread owns the run (commands are queued to it)."""
        return self._owned

    def stop(self, timeout: float | None = None) -> None:
        """Ask the owning thread to end after the current step, and wait up to ``timeout`` s for it."""
        self._stop.set()
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise the error that stopped it, if any."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def say(self, message: str, is_error: bool = False) -> None:
        self.message, self.message_is_error = message, is_error

    def between_steps(self, command: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``command`` on the owning thread between two steps, or now if no thread owns the run or the owning
        thread asks (a loop of the user's own calling between two of its steps)."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(command())
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

        with self._lock:
            if self._owned and threading.current_thread() is not self._holder:
                self._commands.put(run)
                return future
            run()
        return future

    def run_commands(self, wait: float = 0.0) -> None:
        """Run the queued commands (waiting up to ``wait`` s for the first); called by the owning thread."""
        try:
            command = self._commands.get(timeout=wait) if wait else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            command()
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _fail(self, error: BaseException, message: str) -> None:
        self.error, self.state = error, RunState.FAILED
        self.say(message, True)

    def _begin(self, state: RunState, busy: str, check: Callable[[], None] = lambda: None) -> None:
        if self._owned:
            raise RuntimeError(busy)
        check()
        self.error, self.message, self.message_is_error = None, "", False
        self._stop.clear()
        self.state, self._owned = state, True

    def _main(self, body: Callable[[], None], on_end: Callable[[], object], failure: str) -> None:
        error = None
        try:
            body()
        except BaseException as raised:  # the thread must report, never die silently
            error = raised
        finally:
            self.end(error, on_end, failure)
