"""The LSP connection over stdin/stdout, read by one thread that hands whole chunks to the loop.

pygls's own stdio reader runs each ``readline`` and ``read`` in a thread pool: three
thread hops per message (the Content-Length line, the blank line, the body), each
waking a pool thread and then the event loop again. On two busy cores every wake-up
waits for the scheduler, and the hops showed as a large part of the time a keystroke's
request spent outside the model. Here one daemon thread blocks in ``os.read`` and
passes what arrived (usually one or more whole messages) to the loop in one call; the
loop serves ``readline`` and ``readexactly`` from that buffer without further hops.
The message loop itself is pygls's (``pygls.io_.run_async``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import BinaryIO

from pygls.io_ import StdoutWriter, run_async

log = logging.getLogger(__name__)

CHUNK = 1 << 16


class BufferedStdinReader:
    """pygls's AsyncReader (readline, readexactly) over a file descriptor read by one thread."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._more: asyncio.Event | None = None

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._more = asyncio.Event()
        threading.Thread(target=self._read_forever, name="charcode-stdin", daemon=True).start()

    def _read_forever(self) -> None:
        while True:
            try:
                data = os.read(self.fd, CHUNK)
            except OSError as e:
                log.warning("reading stdin: %s", e)
                data = b""
            try:
                self._loop.call_soon_threadsafe(self._arrived, data)
            except RuntimeError:
                return  # the loop has closed: the server is ending
            if not data:
                return

    def _arrived(self, data: bytes) -> None:
        if data:
            self.buffer += data
        else:
            self.eof = True
        self._more.set()

    async def _wait_until(self, ready) -> None:
        if self._loop is None:
            self._start()
        while not ready() and not self.eof:
            self._more.clear()
            await self._more.wait()

    async def readline(self) -> bytes:
        # Let the handler of the message just read start (a request handler runs up to
        # its first await) before the next message is handled, as with one read per
        # wake-up: a request is answered for the document as it was when it came.
        await asyncio.sleep(0)
        await self._wait_until(lambda: b"\n" in self.buffer)
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line

    async def readexactly(self, n: int) -> bytes:
        await self._wait_until(lambda: len(self.buffer) >= n)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


def serve_stdio(server, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Serve one client over stdin/stdout until it exits or the input ends."""
    stdin = stdin or sys.stdin.buffer
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    reader = BufferedStdinReader(stdin.fileno())
    try:
        asyncio.run(
            run_async(
                stop_event=threading.Event(),  # the loop ends at `exit` or at the end of input
                reader=reader,
                protocol=server.protocol,
                logger=log,
                error_handler=server.report_server_error,
            )
        )
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
