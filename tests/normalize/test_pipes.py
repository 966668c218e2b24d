"""The pool's pipe transport on its own: frames as ``multiprocessing.connection`` writes and reads
them, larger than a pipe and a read, several in one read, written without blocking the loop."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from multiprocessing.connection import Connection

from scraper.normalize.pipes import READ_SIZE, FramedPipes


def pipes_pair() -> tuple[Connection, Connection, Connection, Connection]:
    """(parent's command writer, worker's command reader, worker's result writer, parent's result reader)"""
    command_reader, command_writer = multiprocessing.Pipe(duplex=False)
    result_reader, result_writer = multiprocessing.Pipe(duplex=False)
    return command_writer, command_reader, result_writer, result_reader


def test_frames_round_trip_through_a_worker_that_uses_plain_connections() -> None:
    """A worker echoes what it receives with ``Connection.recv_bytes``/``send_bytes``: small frames,
    several in one read, and frames of many reads and many pipe-fulls all come back whole, in order."""
    payloads = [b"x", b"", bytes(range(256)) * 3, b"y" * (5 * READ_SIZE + 7), b"z" * (3 << 20)]
    command_writer, command_reader, result_writer, result_reader = pipes_pair()

    def echo() -> None:
        for _ in payloads:
            result_writer.send_bytes(command_reader.recv_bytes())
        result_writer.close()

    worker = threading.Thread(target=echo)
    worker.start()

    async def main() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        closed = loop.create_future()
        pipes = FramedPipes(loop, command_writer, result_reader, on_frame=got.append,
                            on_closed=lambda: closed.set_result(True))
        for payload in payloads:
            pipes.send(payload)  # never blocks: a 3 MiB frame waits in ``unsent`` for the worker
        assert pipes.unsent  # (more than the pipe holds was sent before the worker read any of it)
        done = await asyncio.wait_for(closed, 30)
        pipes.close()
        return got, done

    got, closed = asyncio.run(main())
    worker.join(5)
    assert got == payloads and closed


def test_a_worker_that_is_gone_closes_the_pipes_and_sending_is_harmless() -> None:
    command_writer, command_reader, result_writer, result_reader = pipes_pair()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        pipes = FramedPipes(loop, command_writer, result_reader, on_frame=lambda _: None,
                            on_closed=lambda: closed.set_result(1))
        command_reader.close()
        result_writer.close()  # the worker died: both its ends are gone
        pipes.send(b"lost")  # (EPIPE: dropped, the result pipe's end already told)
        count = await asyncio.wait_for(closed, 5)
        pipes.close()
        return count

    assert asyncio.run(main()) == 1
