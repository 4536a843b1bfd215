"""A TCP proxy between Mercato and a real service, to stage that service's outages in tests.

    with OutageProxy("127.0.0.1", 6379) as proxy:   # Mercato talks to proxy.url("redis")
        proxy.refuse()   # connections refused, open ones reset: the service is down
        proxy.silence()  # connections accepted, bytes dropped both ways: a silent partition
        proxy.heal()     # forwarding again (connections that lived through silence are reset)

The proxy runs its own event loop in a thread, so sync tests (a `TestClient`), async tests and
worker subprocesses can all be pointed at it; its methods return once the change is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from enum import Enum
from typing import Any, Self

_CHUNK = 65536


class Mode(Enum):
    FORWARD = "forward"
    REFUSE = "refuse"
    SILENT = "silent"


class OutageProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.mode = Mode.FORWARD
        self.port = _free_port()

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *_: object) -> None:
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def refuse(self) -> None:
        """Stop listening (connecting is refused) and reset every open connection."""
        self._call(self._refuse())

    def silence(self) -> None:
        """Keep accepting connections but forward nothing, on open and new ones alike."""
        self._call(self._set(Mode.SILENT))

    def heal(self) -> None:
        self._call(self._heal())

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )

    async def _set(self, mode: Mode) -> None:
        self.mode = mode

    async def _refuse(self) -> None:
        self.mode = Mode.REFUSE
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_links()

    async def _heal(self) -> None:
        # A client that sent a request into the silence may get its answer much later, out of
        # step with what it sends next; real clients time such connections out, these are reset.
        self._reset_links()
        self.mode = Mode.FORWARD
        if self._server is None:
            await self._listen()

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_links()

    def _reset_links(self) -> None:
        for link in list(self._links):
            link.reset()
        self._links.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is Mode.REFUSE:
            _reset(client_w)
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(client_w)
            return
        link = _Link(self, client_w, upstream_w)
        self._links.add(link)
        await asyncio.gather(link.pump(client_r, upstream_w), link.pump(upstream_r, client_w))
        link.reset()
        self._links.discard(link)


class _Link:
    """One client connection and its upstream connection."""

    def __init__(
        self, proxy: OutageProxy, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        self._proxy = proxy
        self._writers = (client, upstream)

    async def pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(_CHUNK):
                if self._proxy.mode is not Mode.FORWARD:
                    continue  # dropped on the floor, as a partition would
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.reset()

    def reset(self) -> None:
        for writer in self._writers:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER 0), as a crashed peer or a firewall would."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() != -1:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
