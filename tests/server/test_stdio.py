"""The stdio reader: whole LSP messages however the bytes arrive (tests/server/test_lsp_* run
the real server over it end to end)."""

from __future__ import annotations

import asyncio
import os
import threading

from charcode.server.stdio import BufferedStdinReader


def message(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_messages(reader: BufferedStdinReader) -> list[bytes]:
    """What pygls's message loop reads: header lines up to a blank one, then the body."""
    out = []
    while True:
        length = 0
        while True:
            line = await reader.readline()
            if not line:
                return out
            if line.startswith(b"Content-Length: "):
                length = int(line.split(b":")[1])
            if not line.strip():
                break
        out.append(await reader.readexactly(length))


def test_messages_split_and_joined_across_writes_arrive_whole():
    bodies = [b'{"a": 1}', b'{"b": "' + b"x" * 200_000 + b'"}', b"{}", '{"é": "ü"}'.encode()]
    stream = b"".join(message(b) for b in bodies)
    rfd, wfd = os.pipe()

    def write() -> None:
        # one byte, a piece cutting a header, the rest in large and small writes
        for piece in (stream[:1], stream[1:10], stream[10:70_000], stream[70_000:]):
            os.write(wfd, piece)
        os.close(wfd)

    writer = threading.Thread(target=write)
    writer.start()
    got = asyncio.run(asyncio.wait_for(read_messages(BufferedStdinReader(rfd)), 10))
    writer.join()
    os.close(rfd)
    assert got == bodies


def test_input_ending_mid_message_ends_the_reading():
    rfd, wfd = os.pipe()
    os.write(wfd, message(b'{"a": 1}') + b'Content-Length: 50\r\n\r\n{"trunc')
    os.close(wfd)
    reader = BufferedStdinReader(rfd)

    async def run() -> tuple[list[bytes], bytes]:
        first = await read_messages_once(reader)
        await reader.readline()
        await reader.readline()
        rest = await reader.readexactly(50)
        return first, rest

    first, rest = asyncio.run(asyncio.wait_for(run(), 10))
    os.close(rfd)
    assert first == b'{"a": 1}' and rest == b'{"trunc'  # short: the loop sees the end
    assert reader.eof


async def read_messages_once(reader: BufferedStdinReader) -> bytes:
    await reader.readline()
    await reader.readline()
    return await reader.readexactly(8)
