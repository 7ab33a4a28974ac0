#!/usr/bin/env python3
"""Follow the result service's live feed and wait for a given tally.

    scripts/ws-tally.py [--url ws://127.0.0.1:5001/ws] [--expect A,B] [--timeout S]

Opens the WebSocket at GET /ws (standard library only: no packages needed
on a CI machine), prints every tally it receives as `a=N b=M`, and exits 0
once a message `{"a":A,"b":B}` arrives (or, without --expect, after the
first tally, which the service sends on connect). Exits 1 on a timeout, a
refused upgrade, a close frame or a message that is not a tally.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fail(message):
    print(f"ws-tally: {message}", file=sys.stderr)
    sys.exit(1)


class Feed:
    def __init__(self, url, deadline):
        parts = urlsplit(url)
        if parts.scheme != "ws":
            fail(f"only ws:// URLs are supported, not {url}")
        self.deadline = deadline
        port = parts.port or 80
        self.sock = socket.create_connection((parts.hostname, port), timeout=self.remaining())
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\n"
            f"Host: {parts.hostname}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.recv_some()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            fail(f"upgrade refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            fail("wrong Sec-WebSocket-Accept in the upgrade response")

    def remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def recv_some(self):
        self.sock.settimeout(self.remaining())
        data = self.sock.recv(65536)
        if not data:
            fail("the server closed the connection")
        return data

    def read(self, n):
        while len(self.buf) < n:
            self.buf += self.recv_some()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload=b""):
        # client frames are masked (RFC 6455 section 5.3)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def next_text(self):
        message = b""
        while True:
            b0, b1 = self.read(2)
            opcode, length = b0 & 0x0F, b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self.read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self.read(8))
            mask = self.read(4) if b1 & 0x80 else None
            payload = self.read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                fail("the server sent a close frame")
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:5001/ws")
    parser.add_argument("--expect", help="A,B: wait for this tally")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    expect = None
    if args.expect:
        try:
            expect = tuple(int(x) for x in args.expect.split(","))
            assert len(expect) == 2
        except (ValueError, AssertionError):
            fail(f"--expect takes A,B, not {args.expect!r}")

    deadline = time.monotonic() + args.timeout
    last = None
    try:
        feed = Feed(args.url, deadline)
        while True:
            text = feed.next_text()
            try:
                tally = json.loads(text)
                last = (int(tally["a"]), int(tally["b"]))
            except (ValueError, KeyError, TypeError):
                fail(f"not a tally: {text!r}")
            print(f"a={last[0]} b={last[1]}")
            if expect is None or last == expect:
                return
    except TimeoutError:
        want = f"a={expect[0]} b={expect[1]}" if expect else "a tally"
        fail(f"no {want} within {args.timeout:g}s (last seen: {last})")
    except OSError as e:
        fail(f"{args.url}: {e}")


if __name__ == "__main__":
    main()
