"""The reference of bench.control_stream: a raw `websockets` echo server (asyncio), one
process, every text frame sent straight back. Prints its port on stdout when listening."""

from __future__ import annotations

import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve

MAX_FRAME_BYTES = 1024 * 1024


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(host: str) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, host, 0, max_size=MAX_FRAME_BYTES) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"))
