#!/usr/bin/env python3
"""One chat through Knowledge Vault's WebSocket, as a browser would, with timings.

Usage:
    chat.py PORT CONVERSATION QUESTION [--expect-tool] [--timeout SECONDS]

Sends {"type": "message", "content": QUESTION} to ws://127.0.0.1:PORT/ws/chat/CONVERSATION,
reads events until `done`, and prints one JSON object on stdout:
    {"events": {"text": n, ...}, "answer": "...", "tools": [{"name", "input", "isError"}],
     "errors": [...], "ttft_s": ..., "total_s": ..., "text_events_per_s": ...}
`ttft_s` is the time from sending to the first `text` event; `text_events_per_s` the text
events per second after the first (llama-server streams about one token per event).
Exits 1 (after printing) if no text arrived, an `error` event came, or --expect-tool was
given and no tool ran with its result going back to the model (a `tool_result`, error or
not, followed by more text: the next request carried it). Standard library only.
"""

import base64
import json
import os
import socket
import struct
import sys
import time


def connect(port, path):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit("the service closed the connection during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        raise SystemExit(f"handshake refused: {status.decode(errors='replace')}")
    return sock


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed")
        out += chunk
    return out


def next_frame(sock):
    """The next text frame's content; control frames are handled here."""
    while True:
        b0, b1 = read_exact(sock, 2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", read_exact(sock, 2))
        elif n == 127:
            (n,) = struct.unpack("!Q", read_exact(sock, 8))
        payload = read_exact(sock, n)
        if opcode == 0x1:
            return payload.decode()
        if opcode == 0x8:
            raise EOFError("the service closed the socket")
        # pings and pongs: nothing to do for this client


def main():
    args = sys.argv[1:]
    expect_tool = "--expect-tool" in args
    timeout = 600.0
    if "--timeout" in args:
        timeout = float(args[args.index("--timeout") + 1])
        del args[args.index("--timeout") : args.index("--timeout") + 2]
    args = [a for a in args if a != "--expect-tool"]
    port, conversation, question = int(args[0]), args[1], args[2]

    sock = connect(port, f"/ws/chat/{conversation}")
    sock.settimeout(timeout)
    started = time.monotonic()
    send_text(sock, json.dumps({"type": "message", "content": question}))
    counts, answer, tools, errors, text_times = {}, [], {}, [], []
    text_after_tool = False
    while True:
        event = json.loads(next_frame(sock))
        kind = event.get("type")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "text":
            text_times.append(time.monotonic() - started)
            text_after_tool = text_after_tool or counts.get("tool_result", 0) > 0
            answer.append(event.get("content", ""))
        elif kind == "tool_use_start":
            tools[event["toolId"]] = {"name": event["name"], "input": event.get("input")}
        elif kind == "tool_result":
            tool = tools.setdefault(event["toolId"], {"name": event["name"]})
            tool["isError"] = bool(event.get("isError", False))
            tool["result_chars"] = len(json.dumps(event.get("result")))
            tool["duration_ms"] = event.get("duration")
        elif kind == "error":
            errors.append(event.get("message"))
        elif kind == "done":
            break
    total = time.monotonic() - started
    sock.close()
    rate = None
    if len(text_times) > 1 and text_times[-1] > text_times[0]:
        rate = round((len(text_times) - 1) / (text_times[-1] - text_times[0]), 1)
    report = {
        "events": counts,
        "answer": "".join(answer),
        "tools": list(tools.values()),
        "errors": errors,
        "ttft_s": round(text_times[0], 2) if text_times else None,
        "total_s": round(total, 2),
        "text_events_per_s": rate,
        "text_after_tool": text_after_tool,
    }
    print(json.dumps(report, ensure_ascii=False))
    ok = bool(text_times) and not errors
    if expect_tool:
        ok = ok and text_after_tool
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
