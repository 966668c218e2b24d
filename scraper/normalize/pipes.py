"""The parent's end of a worker's two pipes, on an asyncio loop: length-prefixed frames written without
blocking and read as they arrive. The frames are ``multiprocessing.connection``'s, so the worker keeps
a plain blocking ``Connection``; the parent reads raw bytes, because ``Connection.recv_bytes`` would
block the loop, and ``run_in_executor`` per batch costs a thread hop (docs/normalisation.md)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection

PIPE_SIZE = 1 << 20  # bytes: a whole batch of books fits one pipe write (Linux default 64 KiB)
READ_SIZE = 1 << 16  # bytes per read of a result pipe: larger reads are mmapped and cost ~10x more
HEADER = struct.Struct("!i")  # multiprocessing.connection's frame header


class FramedPipes:
    """Frames to ``commands`` (:meth:`send`: buffered while the pipe is full) and from ``results``
    (``on_frame(bytes)`` for each whole one; ``on_closed()`` once the worker's end is gone)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, commands: Connection, results: Connection,
                 on_frame: Callable[[bytes], None], on_closed: Callable[[], None]) -> None:
        self.loop = loop
        self.commands = commands
        self.results = results
        self.on_frame = on_frame
        self.on_closed = on_closed
        self.unsent = bytearray()  # what the command pipe has not taken yet
        self.received = bytearray()  # a frame not yet read in full
        for connection in (commands, results):
            os.set_blocking(connection.fileno(), False)
            try:
                fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
                pass
        loop.add_reader(results.fileno(), self._on_readable)

    def send(self, payload: bytes) -> None:
        """Write one frame, or as much as the pipe takes now and the rest when it drains. A worker
        that is gone drops it: its end of the result pipe tells (``on_closed``)."""
        frame = HEADER.pack(len(payload)) + payload
        if self.unsent:
            self.unsent += frame
            return
        try:
            written = os.write(self.commands.fileno(), frame)
        except BlockingIOError:
            written = 0
        except OSError:
            return
        if written < len(frame):
            self.unsent += frame[written:]
            self.loop.add_writer(self.commands.fileno(), self._on_writable)

    def close(self) -> None:
        """Stop watching both pipes and close them (a live worker then exits)."""
        self.loop.remove_reader(self.results.fileno())
        if self.unsent:
            self.loop.remove_writer(self.commands.fileno())
            self.unsent.clear()
        self.commands.close()
        self.results.close()

    def _on_writable(self) -> None:
        try:
            written = os.write(self.commands.fileno(), self.unsent)
        except BlockingIOError:
            return
        except OSError:
            written = len(self.unsent)
        del self.unsent[:written]
        if not self.unsent:
            self.loop.remove_writer(self.commands.fileno())

    def _on_readable(self) -> None:
        try:
            data = os.read(self.results.fileno(), READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.on_closed()
            return
        buffer = self.received
        buffer += data
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer)
            end = HEADER.size + size
            if len(buffer) < end:
                return
            with memoryview(buffer) as view:  # (one copy of the frame, not two)
                frame = bytes(view[HEADER.size:end])
            del buffer[:end]
            self.on_frame(frame)
