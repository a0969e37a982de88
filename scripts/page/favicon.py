#!/usr/bin/env python3
"""Draws the page's icon (a white keyhole on a blue rounded square, the same
shape as src/http/page/favicon.svg) as a 32x32 PNG inside an ICO file, for
browsers that ask for /favicon.ico. Standard library only.

    python3 scripts/page/favicon.py   # rewrites src/http/page/favicon.ico
"""
import pathlib
import struct
import zlib

SIZE = 32
BLUE, WHITE = (48, 86, 211, 255), (255, 255, 255, 255)


def inside_rounded_square(x, y, r=6):
    cx = min(max(x, r), SIZE - r)
    cy = min(max(y, r), SIZE - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def inside_keyhole(x, y):
    circle = (x - 16) ** 2 + (y - 12.5) ** 2 <= 5.5 ** 2
    # A trapezoid from y=14 (4 px wide) to y=25 (9 px wide).
    half = 2 + (y - 14) * 2.5 / 11
    stem = 14 <= y <= 25 and abs(x - 16) <= half
    return circle or stem


def pixel(x, y):
    # Sample at the pixel centre.
    px, py = x + 0.5, y + 0.5
    if not inside_rounded_square(px, py):
        return (0, 0, 0, 0)
    return WHITE if inside_keyhole(px, py) else BLUE


def png():
    rows = b"".join(
        b"\x00" + bytes(c for x in range(SIZE) for c in pixel(x, y)) for y in range(SIZE)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def ico(image):
    # ICONDIR (reserved, type 1 = icon, one image), then one ICONDIRENTRY.
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(image), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + image


out = pathlib.Path(__file__).resolve().parents[2] / "src/http/page/favicon.ico"
out.write_bytes(ico(png()))
print(f"wrote {out} ({out.stat().st_size} bytes)")
