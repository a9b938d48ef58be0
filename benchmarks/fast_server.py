"""A minimal asyncio OpenAI-compatible server that answers at once (HTTP/1.1 keep-alive), for
measuring the client's own overhead. Run: python -m benchmarks.fast_server PORT"""

import asyncio
import json
import sys

BODY = json.dumps({"choices": [{"message": {"role": "assistant", "content": "positive"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 20, "completion_tokens": 1}}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


async def main(port: int):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
