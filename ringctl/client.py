"""The ringd client library: a blocking ``Client`` and a trio ``AsyncClient`` with one API.

Both keep one connection open across calls. Every method of ``_Api`` is written once: it builds
the request and hands it to ``_call``, which the blocking client answers with a socket and the
async client with an awaitable, so ``client.put(...)`` and ``await aclient.put(...)`` agree.

Exceptions (all ``ringd.protocol.errors.ProtocolError`` subclasses, the same from both clients):

- what the node answers with: ``InvalidRequest``, ``Unauthorized``, ``Unavailable`` (with
  ``details["required"]`` and ``details["alive"]``), ``Timeout`` (WRITE_TIMEOUT/READ_TIMEOUT),
  ``Overloaded``, ``ServerError``;
- ``RequestTimeout`` (a ``Timeout``): no answer within the client's ``timeout`` (the node may
  still apply a write);
- ``ConnectError``: the node cannot be reached or the connection broke; its subclasses
  ``NotRingd`` (something answers, but not ringd) and ``WrongCluster`` (a ringd of another
  cluster than ``cluster=`` asks for);
- ``RequestError`` (an ``InvalidRequest``): the request cannot be sent as given: a value CBOR
  cannot encode, or a request larger than a frame. Nothing was sent.

A malformed address (``"host:99999"``, ``":7400"``) raises ``ValueError``.

    from ringctl.client import Client
    with Client("127.0.0.1:7400") as db:
        db.put("demo", "k1", {"name": "Alice"})
        db.get("demo", "k1")   # {"key": "k1", "columns": {"name": "Alice"}, "writetime": {...}}
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ringd.config import DEFAULT_PORT
from ringd.net.address import split_address
from ringd.protocol import codec, messages
from ringd.protocol.connection import Initiator, StreamError
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError, Timeout
from ringd.protocol.framing import DEFAULT_MAX_FRAME

if TYPE_CHECKING:
    from ringd.net.channel import Channel

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


class ConnectError(ProtocolError):
    """The node could not be reached, or the connection broke."""

    code = ErrorCode.SERVER_ERROR


class NotRingd(ConnectError):
    """Something answers at the address, but it does not speak the ringd protocol."""


class WrongCluster(ConnectError):
    """The node belongs to another cluster than the one the client was told to expect."""


class RequestTimeout(Timeout):
    """No answer to a request within the client's timeout."""


class RequestError(InvalidRequest):
    """The request cannot be sent: CBOR cannot encode it, or it is larger than a frame."""


def encode_request(req_id: int, op: str, args: dict[str, Any], max_frame: int) -> bytes:
    """The frame body of a request; ``RequestError`` if it cannot be encoded or is too large."""
    try:
        body = codec.encode(messages.request(req_id, op, args))
    except ProtocolError as exc:
        raise RequestError(f"cannot encode the {op} request: {exc.message}") from None
    except RecursionError:
        raise RequestError(f"cannot encode the {op} request: it nests too deeply") from None
    if len(body) > max_frame:
        raise RequestError(
            f"the {op} request is {len(body)} bytes; a frame holds at most {max_frame} bytes"
        )
    return body


def check_hello(address: str, info: Any, cluster: str | None) -> dict[str, Any]:
    """The hello result, checked: from a ringd node, of ``cluster`` when one is expected."""
    if not isinstance(info, dict) or "host_id" not in info:
        raise NotRingd(f"{address} is not a ringd node (its hello answer has no host_id)")
    if cluster is not None and info.get("cluster") != cluster:
        raise WrongCluster(
            f"{address} is a node of cluster {info.get('cluster')!r}, not of {cluster!r}"
        )
    return info


def _consistency(
    args: dict[str, Any], consistency: str | None, count_name: str, count: int | None
) -> None:
    if consistency is not None:
        args["consistency"] = consistency.upper()
    if count is not None:
        args[count_name] = count


class _Api:
    """Every request, built once; ``_call`` does the I/O (blocking or awaitable).

    A client is a *session*: ``session_us`` is the highest write timestamp it has seen (from
    its writes' results and its reads' writetimes). Every put, get and delete sends it, and the
    coordinator's clock moves past it before stamping, so a session's own writes are ordered
    whatever coordinators and clocks they go through.
    """

    session_us: int = 0

    def __init__(
        self,
        address: str,
        timeout: float,
        credentials: Any,
        max_frame: int,
        cluster: str | None,
        tls_ca: str | None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.credentials = credentials
        self.cluster = cluster
        self.tls_ca = tls_ca  # a CA file: connect with TLS and verify the node's certificate
        self._max_frame = max_frame

    def _call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        raise NotImplementedError

    def _then(self, value: Any, after: Any) -> Any:
        """``after(result)`` of a call (the async client chains it on the awaitable)."""
        return after(value)

    def _data(self, op: str, args: dict[str, Any], trace: bool = False) -> Any:
        """A put, get or delete, carrying the session's high-water mark and raising it.
        ``trace``: the node answers ``{"result": ..., "trace": [event, ...]}``."""
        if self.session_us:
            args["session_us"] = self.session_us
        if trace:
            args["trace"] = True
            return self._then(self._call(op, args), self._saw_traced)
        return self._then(self._call(op, args), self._saw)

    def _saw_traced(self, answer: Any) -> Any:
        if isinstance(answer, dict):
            self._saw(answer.get("result"))
        return answer

    def _saw(self, result: Any) -> Any:
        if isinstance(result, dict):
            stamps = [result.get("timestamp")]
            writetime = result.get("writetime")
            if isinstance(writetime, dict):
                stamps.extend(writetime.values())
            for ts in stamps:
                if type(ts) is int and ts > self.session_us:
                    self.session_us = ts
        return result

    def ping(self) -> Any:
        return self._call("ping", {})

    def put(
        self,
        keyspace: str,
        key: str | bytes,
        columns: dict[str, Any],
        *,
        ttl: int | None = None,
        timestamp: int | None = None,
        consistency: str | None = None,
        w: int | None = None,
        trace: bool = False,
    ) -> Any:
        """Write columns of a row. Returns ``{"timestamp": µs, "acks": n}`` (with ``trace``:
        ``{"result": that, "trace": [event, ...]}``, docs/protocol.md section 11.9)."""
        args: dict[str, Any] = {"keyspace": keyspace, "key": key, "columns": columns}
        if ttl is not None:
            args["ttl"] = ttl
        if timestamp is not None:
            args["timestamp"] = timestamp
        _consistency(args, consistency, "w", w)
        return self._data("put", args, trace)

    def get(
        self,
        keyspace: str,
        key: str | bytes,
        *,
        consistency: str | None = None,
        r: int | None = None,
        trace: bool = False,
    ) -> Any:
        """The row's live columns ``{"key", "columns", "writetime"}``, or ``None`` if absent
        (with ``trace``: ``{"result": that, "trace": [event, ...]}``)."""
        args: dict[str, Any] = {"keyspace": keyspace, "key": key}
        _consistency(args, consistency, "r", r)
        return self._data("get", args, trace)

    def delete(
        self,
        keyspace: str,
        key: str | bytes,
        columns: list[str] | None = None,
        *,
        timestamp: int | None = None,
        consistency: str | None = None,
        w: int | None = None,
        trace: bool = False,
    ) -> Any:
        """Delete the row, or only the named columns (``trace`` as for :meth:`put`)."""
        args: dict[str, Any] = {"keyspace": keyspace, "key": key}
        if columns:
            args["columns"] = list(columns)
        if timestamp is not None:
            args["timestamp"] = timestamp
        _consistency(args, consistency, "w", w)
        return self._data("delete", args, trace)

    def scan(
        self,
        keyspace: str,
        cursor: list[Any] | None = None,
        *,
        limit: int = 500,
        consistency: str | None = None,
        r: int | None = None,
    ) -> Any:
        """One page of rows in token order: ``{"rows": [...], "cursor": next or None}``."""
        args: dict[str, Any] = {"keyspace": keyspace, "cursor": cursor, "limit": limit}
        _consistency(args, consistency, "r", r)
        return self._call("scan", args)

    def keyspace_create(
        self,
        name: str,
        *,
        replication: dict[str, Any] | None = None,
        if_not_exists: bool = False,
        **options: Any,
    ) -> Any:
        """Define a keyspace. ``replication`` defaults to SimpleStrategy with factor 1; options are
        gc_grace_seconds, default_ttl, hinted_handoff, sloppy_quorum, read_repair."""
        args = {"name": name, "if_not_exists": if_not_exists, **options}
        if replication is not None:
            args["replication"] = replication
        return self._call("keyspace_create", args)

    def keyspace_alter(self, name: str, **changes: Any) -> Any:
        return self._call("keyspace_alter", {"name": name, **changes})

    def keyspace_drop(self, name: str, *, if_exists: bool = False) -> Any:
        return self._call("keyspace_drop", {"name": name, "if_exists": if_exists})

    def keyspace_list(self) -> Any:
        return self._call("keyspace_list", {})

    def admin(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        """Any admin verb (status, info, ring, tablestats, ...) with its arguments."""
        return self._call(op, {k: v for k, v in args.items() if v is not None}, timeout)


def _tls_context(ca: str) -> ssl.SSLContext:
    from ringd.auth.tls import TLSConfigError, client_context

    try:
        return client_context(Path(ca).expanduser())
    except TLSConfigError as exc:
        raise ConnectError(str(exc)) from None


def _wrap_tls(sock: socket.socket, ca: str, host: str, address: str) -> socket.socket:
    """The TLS handshake over ``sock``, verifying the node's certificate against ``ca``."""
    try:
        return _tls_context(ca).wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise ConnectError(
            f"TLS handshake with {address} failed: {exc} (does the node listen with TLS?)"
        ) from None


class Client(_Api):
    """Blocking client over a plain socket; one request at a time; reconnects when needed."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = 30.0,
        credentials: Any = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        cluster: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        super().__init__(address, timeout, credentials, max_frame, cluster, tls_ca)
        self._sock: socket.socket | None = None
        self._proto: Initiator[str] = Initiator(max_frame)
        self.server_info: dict[str, Any] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def connect(self) -> None:
        host, port = split_address(self.address, DEFAULT_PORT)
        try:
            sock = socket.create_connection((host, port), timeout=min(self.timeout, 5.0))
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.address}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls_ca is not None:
            sock = _wrap_tls(sock, self.tls_ca, host, self.address)
        sock.settimeout(self.timeout)
        self._sock = sock
        self._proto = Initiator(self._max_frame)
        try:
            info = self._roundtrip("hello", messages.hello_args(messages.CLIENT, self.credentials))
            self.server_info = check_hello(self.address, info, self.cluster)
        except ProtocolError:
            self.close()
            raise

    def _call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        if self._sock is None:
            self.connect()
        if timeout is not None and self._sock is not None:
            self._sock.settimeout(timeout)
        try:
            return self._roundtrip(op, args)
        finally:
            if timeout is not None and self._sock is not None:
                self._sock.settimeout(self.timeout)

    def _roundtrip(self, op: str, args: dict[str, Any]) -> Any:
        sock = self._sock
        proto = self._proto
        assert sock is not None
        encode_request(0, op, args, self._max_frame)  # RequestError before anything is sent
        try:
            if op == "hello":
                _, data = proto.hello(args, op)
            else:
                _, data = proto.request(op, args, op)
            sock.sendall(data)
            while True:
                try:
                    item = proto.next_response()
                except StreamError as exc:  # the bytes are not this protocol
                    if op == "hello":
                        raise NotRingd(
                            f"{self.address} is not a ringd node ({exc.message})"
                        ) from None
                    raise ConnectError(f"bad data from {self.address}: {exc.message}") from None
                except ProtocolError:
                    self.close()
                    raise
                if item is None:
                    data = sock.recv(256 * 1024)
                    if not data:
                        raise ConnectError(f"{self.address} closed the connection")
                    proto.receive(data)
                    continue
                return messages.response_value(item[1])
        except TimeoutError:
            waited = sock.gettimeout()
            self.close()
            raise RequestTimeout(
                f"no response from {self.address} to {op} within {waited or self.timeout:g}s"
            ) from None
        except OSError as exc:
            self.close()
            raise ConnectError(
                f"connection to {self.address} failed: {exc.strerror or exc}"
            ) from None
        except ConnectError:
            self.close()
            raise


class AsyncClient(_Api):
    """trio client: many requests in flight on one connection.

    async with AsyncClient("127.0.0.1:7400") as db:
        await db.put("demo", "k1", {"name": "Alice"})
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = 30.0,
        credentials: Any = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        cluster: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        super().__init__(address, timeout, credentials, max_frame, cluster, tls_ca)
        self._channel: Channel | None = None
        self._nursery_cm: Any = None
        self.server_info: dict[str, Any] = {}

    async def __aenter__(self) -> AsyncClient:
        import trio  # imported here: the blocking client and the CLI start faster without it

        from ringd.net.channel import CallTimeout, ConnectionClosed, open_channel

        host, port = split_address(self.address, DEFAULT_PORT)
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            self._channel = await open_channel(
                nursery,
                f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
                messages.hello_args(messages.CLIENT, self.credentials),
                connect_timeout=min(self.timeout, 5.0),
                max_frame=self._max_frame,
                tls=_tls_context(self.tls_ca) if self.tls_ca is not None else None,
            )
            self.server_info = check_hello(self.address, self._channel.peer_info, self.cluster)
        except BaseException as exc:
            if self._channel is not None:
                self._channel.close()
            nursery.cancel_scope.cancel()
            await self._nursery_cm.__aexit__(None, None, None)
            if isinstance(exc, ConnectionClosed):
                if exc.message.startswith("bad data from"):
                    raise NotRingd(
                        f"{self.address} is not a ringd node ({exc.message.partition(': ')[2]})"
                    ) from None
                raise ConnectError(exc.message) from None
            if isinstance(exc, CallTimeout):
                raise RequestTimeout(exc.message) from None
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._channel is not None:
            self._channel.close()
        await self._nursery_cm.__aexit__(*exc)

    async def _acall(self, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        if self._channel is None:
            raise ConnectError("AsyncClient is not connected; use 'async with AsyncClient(...)'")
        from ringd.net.channel import CallTimeout, ConnectionClosed

        encode_request(0, op, args, self._max_frame)  # a request that cannot go is not sent
        try:
            return await self._channel.call(op, args, timeout or self.timeout)
        except ConnectionClosed as exc:
            raise ConnectError(exc.message) from None
        except CallTimeout as exc:
            raise RequestTimeout(exc.message) from None

    def _call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        return self._acall(op, args, timeout)

    def _then(self, value: Any, after: Any) -> Any:
        async def chained() -> Any:
            return after(await value)

        return chained()
