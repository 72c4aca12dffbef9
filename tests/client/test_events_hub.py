"""`Client.events` against a real hub process (SQLite and PostgreSQL), killed and restarted."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable

import pytest
from tests.fixtures.client import HubProcess

from swarmlab.client import Client, Event, EventStream

pytestmark = pytest.mark.slow


def post(author: Client, n: int) -> list[str]:
    return [str(author.post(f"note {i}")["id"]) for i in range(n)]


def test_the_history_arrives_in_order_with_filters(hub_process: HubProcess) -> None:
    alice = hub_process.agent("alice")
    first = post(alice, 2)
    result = alice.post_result({"tps": 100, "ppl": 2.3}, method="m", description="d")
    hub_process.client(hub_process.organizer_token).verdict(result["id"], "valid")
    with alice.events(after=0, follow=False) as stream:
        got = list(stream)
    assert [e.kind for e in got] == ["message", "message", "result", "verdict"]
    assert [e.ref for e in got[:2]] == first and got[0].data["author"] == "alice"
    assert [e.id for e in got] == sorted({e.id for e in got})
    verdicts = list(alice.events(after=0, kinds=["verdict"], follow=False))
    assert [(e.kind, e.ref) for e in verdicts] == [("verdict", result["id"])]


def follow_in_thread(
    stream: EventStream,
) -> tuple[queue.Queue[Event | BaseException], threading.Thread]:
    """Iterate `stream` on a thread, handing each event (or the error) to a queue."""
    out: queue.Queue[Event | BaseException] = queue.Queue()

    def run() -> None:
        try:
            for event in stream:
                out.put(event)
        except BaseException as exc:  # handed to the test thread
            out.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return out, thread


def take(events: queue.Queue[Event | BaseException], n: int) -> list[str]:
    """The refs of the next `n` events the reader hands over (bounded wait; errors re-raised)."""
    refs = []
    for _ in range(n):
        item = events.get(timeout=60)
        if isinstance(item, BaseException):
            raise item
        refs.append(item.ref)
    return refs


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # polling a condition, bounded


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_a_hub_restart_loses_and_repeats_nothing(hub_process: HubProcess, sig: int) -> None:
    alice = hub_process.agent("alice")
    before = post(alice, 3)
    after: list[str] = []
    stopped = threading.Event()

    def restart_and_post(delay: float) -> None:
        """Called where the stream waits before reconnecting: bring the hub back, write more."""
        assert stopped.wait(30), "the hub was not stopped"
        hub_process.start()
        after.extend(post(alice, 2))

    stream = hub_process.client(sleep=restart_and_post).events(after=0)
    events, reader = follow_in_thread(stream)
    assert take(events, 2) == before[:2]
    hub_process.stop(signal.Signals(sig))
    stopped.set()
    assert take(events, 3) == [before[2], *after]
    stream.close()
    reader.join(timeout=30)
    assert not reader.is_alive() and events.empty()  # nothing came twice


def test_a_stream_that_saw_no_event_resumes_from_its_start(hub_process: HubProcess) -> None:
    """Events written while the stream was down must arrive though it had no id of its own."""
    alice = hub_process.agent("alice")
    post(alice, 1)
    written: list[str] = []
    stopped = threading.Event()

    def restart_and_post(delay: float) -> None:
        """On the reader's thread, which may see the hub go before `stop` has returned."""
        assert stopped.wait(30), "the hub was not stopped"
        hub_process.start()
        written.extend(post(alice, 2))

    stream = hub_process.client(sleep=restart_and_post).events()  # from the newest event
    events, reader = follow_in_thread(stream)
    until(lambda: stream.last_event_id is not None, "the stream to start")
    hub_process.stop(signal.SIGKILL)
    stopped.set()
    got = take(events, 2)
    stream.close()
    reader.join(timeout=30)
    assert got == written


def test_new_events_arrive_live_and_close_stops_a_blocked_reader(hub_process: HubProcess) -> None:
    alice = hub_process.agent("alice")
    stream = alice.events()
    events, reader = follow_in_thread(stream)
    until(lambda: stream.last_event_id is not None, "the stream to start")
    posted = post(alice, 2)
    assert take(events, 2) == posted
    stream.close()  # from this thread, while the reader is blocked on the socket
    reader.join(timeout=30)
    assert not reader.is_alive() and events.empty()
