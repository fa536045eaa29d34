"""A loop that holds a real ipykernel's main thread still hears the front end's widget messages through
`explorer.live.kernel_events`, and the cells queued behind it still run after it, in order."""

from __future__ import annotations

import queue
import textwrap

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipywidgets")

TIMEOUT_S = 60


@pytest.fixture
def kernel():
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client, code: str) -> str:
    """Execute ``code`` and return what it printed."""
    msg_id = client.execute(textwrap.dedent(code))
    return collect(client, [msg_id]).get(msg_id, "")


def collect(client, msg_ids: list[str]) -> dict[str, str]:
    """What each of the requests ``msg_ids`` printed, once every one is done, in the order they finished."""
    printed: dict[str, str] = {}
    done: list[str] = []
    while len(done) < len(msg_ids):
        try:
            message = client.get_iopub_msg(timeout=TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"the kernel did not finish {set(msg_ids) - set(done)} within {TIMEOUT_S} s")
        parent = message["parent_header"].get("msg_id")
        if parent not in msg_ids:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            printed[parent] = printed.get(parent, "") + content["text"]
        elif kind == "error":
            pytest.fail("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            done.append(parent)
    assert done == msg_ids, f"the requests finished out of order: {done}"
    return printed


def test_a_foreground_loop_hears_a_widget_message_and_the_next_cells_wait_their_turn(kernel):
    comm_id = run(kernel, """
        import time
        import ipywidgets
        box = ipywidgets.IntText(0)
        print(box.comm.comm_id, end="")
    """)
    loop = kernel.execute(textwrap.dedent("""
        from explorer.live.kernel_events import kernel_events
        poll = kernel_events()
        print("looping", flush=True)
        deadline = time.monotonic() + 30
        while box.value != 5 and time.monotonic() < deadline:  # a training loop: the kernel's main thread is busy
            poll()
            time.sleep(0.01)
        print("saw", box.value)
    """))
    queued = [kernel.execute(f"print('cell {n} saw', box.value)") for n in range(3)]  # "Run All": held until after
    update = {"method": "update", "state": {"value": 5}, "buffer_paths": []}
    kernel.shell_channel.send(kernel.session.msg("comm_msg", {"comm_id": comm_id, "data": update}))

    printed = collect(kernel, [loop, *queued])
    assert printed[loop] == "looping\nsaw 5\n", "the loop did not hear the widget's new value"
    assert [printed[cell] for cell in queued] == [f"cell {n} saw 5\n" for n in range(3)]


def test_the_explorers_picture_is_drawn_on_the_kernels_thread_between_cells(kernel):
    """Matplotlib is not thread-safe: the static picture must not draw beside the notebook's own figures."""
    run(kernel, """
        import concurrent.futures, threading
        from explorer.widgets.static_view import between_cells
        drawn = between_cells(concurrent.futures.ThreadPoolExecutor(1),
                              lambda: (threading.current_thread().name, done_with_the_cell))
        done_with_the_cell = True  # the task runs after this line: the cell ends first
    """)
    assert run(kernel, "print(*drawn.result(timeout=10))") == "MainThread True\n"
