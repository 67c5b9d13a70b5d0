"""A minimal HTTP/1.0 endpoint for Prometheus scrapes, served by trio in the node's thread.

``GET /metrics`` (or ``/``) answers the text exposition format; anything else 404 or 405. One
request per connection, a request head of at most 8 KiB read within 5 seconds, and at most
``MAX_SCRAPES`` connections at once (more are closed at once), so a misbehaving client cannot
hold the node's memory or tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

MAX_HEAD = 8192
HEAD_TIMEOUT = 5.0
MAX_SCRAPES = 8


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class MetricsServer:
    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render
        self._slots = trio.Semaphore(MAX_SCRAPES)

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            task_status.started(listeners)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                return
            try:
                await stream.send_all(await self._answer(stream))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            except Exception:  # a bug: never let it take down the node
                log.exception("metrics scrape failed")
            finally:
                self._slots.release()

    async def _answer(self, stream: trio.SocketStream) -> bytes:
        head = b""
        with trio.move_on_after(HEAD_TIMEOUT):
            while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) <= MAX_HEAD:
                data = await stream.receive_some(4096)
                if not data:
                    break
                head += data
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or len(head) > MAX_HEAD:
            return _response("400 Bad Request", b"bad request\n")
        method, path = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _response("405 Method Not Allowed", b"only GET\n")
        if path not in (b"/", b"/metrics"):
            return _response("404 Not Found", b"try /metrics\n")
        body = self.render()
        reply = _response("200 OK", body, CONTENT_TYPE_LATEST)
        return reply[: len(reply) - len(body)] if method == b"HEAD" else reply
