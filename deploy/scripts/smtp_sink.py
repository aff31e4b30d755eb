#!/usr/bin/env python3
"""SMTP sink for Sportello's tests: accepts every message on a loopback port and writes it to a
directory, so tests can read exactly what the application sent.

Each message becomes NNNNNN-<time>.eml (the DATA bytes, unchanged) next to NNNNNN-<time>.json
with the envelope (mail_from, rcpt_tos, peer, received_at, size). Both are written to temporary
names and renamed, the .json first, so a reader that sees a .eml can read its envelope too.

While the reject file exists, every transaction is refused at RCPT with the reply on its first
line (default `451 4.3.0 Sink told to refuse`), so tests can simulate transient (4xx) and
permanent (5xx) failures without stopping the process.
"""

import argparse
import asyncio
import datetime
import itertools
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory: str, reject_file: str | None) -> None:
        self.directory = directory
        self.reject_file = reject_file
        existing = [n for n in os.listdir(directory) if n.endswith(".eml")]
        self.counter = itertools.count(len(existing) + 1)

    def _rejection(self) -> str | None:
        if not self.reject_file or not os.path.exists(self.reject_file):
            return None
        try:
            with open(self.reject_file, encoding="utf-8") as f:
                line = f.readline().strip()
        except OSError:
            line = ""
        if len(line) >= 3 and line[:3].isdigit() and line[0] in "45":
            return line
        return "451 4.3.0 Sink told to refuse"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rejection = self._rejection()
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rejection = self._rejection()
        if rejection:
            return rejection
        now = datetime.datetime.now(datetime.timezone.utc)
        stem = f"{next(self.counter):06d}-{now.strftime('%Y%m%dT%H%M%S%f')}"
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(session.peer) if session.peer else None,
            "received_at": now.isoformat(),
            "size": len(data),
        }
        self._write(stem + ".json", json.dumps(meta, indent=2).encode("utf-8"))
        self._write(stem + ".eml", data)
        return "250 2.0.0 Message accepted"

    def _write(self, name: str, data: bytes) -> None:
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.directory, name))


async def serve(args: argparse.Namespace) -> None:
    os.makedirs(args.dir, exist_ok=True)
    handler = Sink(args.dir, args.reject_file)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="sink.sportello.test",
            enable_SMTPUTF8=True,
            data_size_limit=args.max_size,
        ),
        host=args.host,
        port=args.port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp_sink listening on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where received messages are written")
    parser.add_argument("--reject-file", default=None, help="refuse mail while this file exists")
    parser.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
