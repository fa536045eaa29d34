"""The front end's events for a loop that holds a Jupyter kernel's main thread.

A training loop run in a notebook's foreground keeps the kernel from reading its shell messages: slider moves,
button clicks and the views' own bookkeeping (widget comm messages) would wait until the cell ends. `kernel_events`
gives the loop a function to call between steps that handles the comm messages waiting now.

ipykernel 7 hands the main shell's messages to the main thread through an in-process socket. The function reads
that socket without blocking: it handles each comm message as the kernel does for a cell that awaits (in a copy
of the context, then the cell's parent restored, so the loop's output stays in its cell), and holds every other
message (the next cells' execute requests, completions) for the kernel to handle, in arrival order, once the
cell ends. (``jupyter-ui-poll`` did this job through ``Kernel.do_one_iteration``, which ipykernel 7.4 no longer has.)
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any

COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
MESSAGES_PER_CALL = 50  # a burst of slider moves does not stall the loop


def kernel_events() -> Callable[[], None] | None:
    """When called on the main thread of an ipykernel (7 or later): a function that handles the front end's
    pending events (one per cell: the same for every call in it). Otherwise (a script, a thread) None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if getattr(kernel, "shell_channel_thread", None) is None:  # not in a kernel, or one before ipykernel 7
        return None
    global _current
    if _current is None:
        _current = ShellPump(shell, kernel)
    return _current


_current: ShellPump | None = None
_replaying: set[asyncio.Future[None]] = set()


class ShellPump:
    """Reads the main shell's messages while a cell runs: comm messages are handled at once, the rest held for
    the kernel until the cell ends (see the module docstring)."""

    def __init__(self, shell: Any, kernel: Any) -> None:
        import zmq

        self.kernel, self.shell = kernel, shell
        self.again = zmq.Again
        self.flags = zmq.NOBLOCK
        self.socket = kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_socket
        self.held: list[list[Any]] = []
        shell.events.register("post_run_cell", self.release)

    def __call__(self) -> None:
        for _ in range(MESSAGES_PER_CALL):
            try:
                frames = self.socket.recv_multipart(self.flags, copy=False)
            except self.again:
                return
            if self.message_type(frames) in COMM_MESSAGES:
                self.handle(frames)
            else:
                self.held.append(frames)

    def message_type(self, frames: list[Any]) -> str | None:
        session = self.kernel.session
        try:
            _, message = session.feed_identities(frames, copy=False)
            return session.deserialize(message, content=False, copy=False)["header"]["msg_type"]
        except Exception:  # not ours to judge: the kernel reports a malformed message when it gets it
            return None

    def handle(self, frames: list[Any]) -> None:
        """As ipykernel handles a comm message that arrives while an awaiting cell holds the shell."""
        kernel = self.kernel
        parent, ident = kernel.get_parent("shell"), kernel._get_shell_context_var(kernel._shell_parent_ident)
        try:
            contextvars.copy_context().run(run_to_end, kernel.dispatch_shell(frames, concurrent=True))
        finally:
            kernel.set_parent(ident, parent, channel="shell")

    def release(self, *_: Any) -> None:
        """After the cell: the held messages go to the kernel's main shell, in order, behind any it had read before
        the cell began and ahead of any newer one."""
        global _current
        self.shell.events.unregister("post_run_cell", self.release)
        _current = None
        for frames in self.held:
            task = asyncio.ensure_future(self.dispatch_in_context(frames))
            _replaying.add(task)  # the loop keeps only weak references to its tasks
            task.add_done_callback(_replaying.discard)
        self.held = []

    async def dispatch_in_context(self, frames: list[Any]) -> None:
        """What ipykernel's socket reader does with a message: a task that starts another (in a copied context).
        The same two steps keep the order with a message that reader took before the cell began: its first task
        is already queued when these are, so its second runs before theirs."""
        await asyncio.create_task(self.kernel.shell_main(None, frames), context=contextvars.copy_context())


def run_to_end(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (a comm handler is synchronous) without an event loop: the running
    one is busy with the cell that calls this."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a comm message handler waited for the event loop, which the running cell holds")

