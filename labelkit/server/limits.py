"""The service's limits: request body size and time (an ASGI middleware), and verification slots.

``RequestLimits`` wraps the whole app. A declared ``Content-Length`` over the limit is answered
413 before a byte of the body is read; a body without one (chunked) is counted as the app reads
it, and reading stops with 413 at the limit. A request still unanswered after the timeout gets
504. ``Slots`` bounds how many verifications run at once, each in a worker thread; a slot stays
taken until its thread has really finished, even when the request that started it timed out,
so that abandoned work cannot pile up past the limit.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Awaitable, Callable, TypeVar

import anyio
import anyio.to_thread

__all__ = ["BodyTooLarge", "Busy", "RequestLimits", "Slots", "json_error"]

T = TypeVar("T")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body went past the upload limit while it was being read."""


class Busy(Exception):
    """Every verification slot stayed taken for the whole wait."""


async def json_error(send: Send, status: int, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a complete JSON error response {"error": message} from plain ASGI."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Pure ASGI middleware: 413 over ``max_body_bytes`` (unread when declared), 504 after
    ``timeout_s`` without a response."""

    def __init__(self, app: Callable, *, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
                if length < 0 or len(set(declared)) != 1:
                    raise ValueError
            except ValueError:
                await json_error(send, 400, "invalid Content-Length", [(b"connection", b"close")])
                return
            if length > self.max_body_bytes:
                # The body is never read: uvicorn does not even send "100 Continue" for it.
                await json_error(send, 413, self._too_large(), [(b"connection", b"close")])
                return
        started = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self._too_large())
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            with anyio.move_on_after(self.timeout_s) as deadline:
                await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if not started:
                await json_error(send, 413, str(exc), [(b"connection", b"close")])
            return
        if deadline.cancelled_caught and not started:
            await json_error(send, 504, f"the request took longer than {self.timeout_s:g} s",
                             [(b"connection", b"close")])

    def _too_large(self) -> str:
        return f"the upload is larger than the limit of {self.max_body_bytes} bytes"


class Slots:
    """At most ``n`` jobs at once, each in a worker thread; waiting for a slot is bounded."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"concurrency must be at least 1, not {n}")
        self.n = n
        # A threading semaphore, not an anyio one: a worker thread releases it when its job ends,
        # which may be after the request that started it has been cancelled and gone.
        self._free = threading.Semaphore(n)
        self._busy = 0
        self._count_lock = threading.Lock()
        self._queue: collections.deque[object] = collections.deque()
        self._limiter: Any = None

    @property
    def busy(self) -> int:
        """How many slots are taken."""
        return self._busy

    async def _acquire(self, wait_s: float) -> bool:
        # First come, first served: a request that finds no free slot takes a place in the
        # queue, and a freed slot goes to the oldest waiter, never to a newcomer (polling
        # without a queue let fresh requests overtake waiters until these timed out: 47 of
        # 10,000 answered 503 at a load equal to the slots, tools/server_load.py).
        ticket = object()
        with self._count_lock:
            if not self._queue and self._free.acquire(blocking=False):
                self._busy += 1
                return True
            self._queue.append(ticket)
        deadline = anyio.current_time() + wait_s
        delay = 0.001
        try:
            while True:
                with self._count_lock:
                    if self._queue[0] is ticket and self._free.acquire(blocking=False):
                        self._queue.popleft()
                        self._busy += 1
                        return True
                left = deadline - anyio.current_time()
                if left <= 0:
                    return False
                await anyio.sleep(min(delay, left))  # polled: only ever while saturated
                delay = min(delay * 2, 0.01)
        finally:
            with self._count_lock:
                if ticket in self._queue:  # timed out or cancelled while waiting
                    self._queue.remove(ticket)

    def _release(self) -> None:
        with self._count_lock:
            self._busy -= 1
        self._free.release()

    async def run(self, fn: Callable[[], T], *, wait_s: float,
                  cleanup: Callable[[], None] | None = None) -> T:
        """``fn()`` in a worker thread holding a slot; raises Busy after ``wait_s`` without one.

        ``cleanup()`` runs exactly once, whatever happens: when ``fn`` has returned or raised,
        when it will never run (no slot, or the caller was cancelled before the thread started
        it), but never while it is still running: a cancelled caller leaves the thread to
        finish, and the thread then cleans up and gives back its slot.
        """
        def finish() -> None:
            try:
                if cleanup is not None:
                    cleanup()
            finally:
                self._release()

        try:
            acquired = await self._acquire(wait_s)
        except BaseException:
            if cleanup is not None:
                cleanup()
            raise
        if not acquired:
            if cleanup is not None:
                cleanup()
            raise Busy(f"all {self.n} verification slots are busy")
        state = ["pending"]  # -> running (the thread owns finish) or abandoned (we do)
        lock = threading.Lock()

        def work() -> T | None:
            with lock:
                if state[0] == "abandoned":
                    return None
                state[0] = "running"
            try:
                return fn()
            finally:
                finish()

        if self._limiter is None:  # created in the event loop, sized to the slots
            self._limiter = anyio.CapacityLimiter(self.n)
        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True,  # type: ignore
                                                  limiter=self._limiter)
        except BaseException:
            with lock:
                mine = state[0] == "pending"
                if mine:
                    state[0] = "abandoned"
            if mine:
                finish()
            raise
