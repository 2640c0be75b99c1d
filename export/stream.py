"""An export's bytes as an iterator: the matrix is written by a worker thread into a bounded queue.

A web response drains the iterator, so the event loop never runs the export and memory stays
flat however large the matrix is (at most `QUEUE_DEPTH` blocks of `QUEUE_BLOCK` bytes in
flight). A consumer that stops early stops the worker; a failure in the worker ends the
iteration with an error, never with a short file that looks complete.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import neo4j

from connectome_query.export.formats import WriteOnlySink
from connectome_query.export.matrix import ExportPlan, write

QUEUE_BLOCK = 1 << 20
"""Bytes the worker hands to the response at a time."""
QUEUE_DEPTH = 8
"""Blocks in flight between worker and response (bounds memory at ~8 MiB per download)."""


class _Done:
    pass


DONE = _Done()


class QueueSink(WriteOnlySink):
    """A write-only binary file whose bytes go, in blocks, to a bounded queue."""

    def __init__(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        self.q = q
        self.stop = stop
        self.buffer = bytearray()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.position += len(view)
        if len(self.buffer) >= QUEUE_BLOCK:
            self._put(bytes(self.buffer))
            self.buffer.clear()
        return len(view)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def finish(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise ConnectionAbortedError("the client went away")
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


def stream_export(driver: neo4j.Driver, plan: ExportPlan) -> Iterator[bytes]:
    """Run `write` in a worker thread and yield its bytes as they come."""
    q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    sink = QueueSink(q, stop)

    def produce() -> None:
        try:
            write(driver, plan, sink)  # type: ignore[arg-type]
            sink.finish()
            sink._put(DONE)
        except BaseException as exc:
            if not stop.is_set():
                with suppress(ConnectionAbortedError):
                    sink._put(exc)

    worker = threading.Thread(target=produce, name="export-writer", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is DONE:
                return
            if isinstance(item, BaseException):
                # Abort the response: the client sees a broken transfer, never a short file
                # that looks complete.
                raise RuntimeError("matrix export failed while streaming") from item
            yield item
    finally:
        stop.set()
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break
