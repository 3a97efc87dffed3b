"""Time the project's MQTT codec against a native one from the package index.

    python scripts/codec_compare.py

``mqtt5`` (Rust, PyO3) is the only native MQTT codec found on the index; it
speaks MQTT 5 only, whose PUBLISH carries a properties block that 3.1.1 does
not have, so it cannot read or write the connector's wire. It is timed on its
own format as a reference for what a native codec buys per message. Best of 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taktora_connector.adapters.mqtt.protocol.packets import (
    NeedData,
    PacketReader,
    encode_publish,
)

COUNT = 200_000
PAYLOAD = b"x" * 64


def rate(seconds: float) -> str:
    return f"{COUNT / seconds / 1000:,.0f}k/s"


def ours() -> tuple[float, float]:
    started = time.perf_counter()
    packets = [encode_publish(b"bench/topic", PAYLOAD, 0) for _ in range(COUNT)]
    encoded = time.perf_counter() - started
    stream = b"".join(packets)
    reader = PacketReader()
    started = time.perf_counter()
    for start in range(0, len(stream), 65_536):
        reader.receive_data(stream[start : start + 65_536])
        while not isinstance(reader.next_event(), NeedData):
            pass
    return encoded, time.perf_counter() - started


def native() -> tuple[float, float] | None:
    try:
        import mqtt5  # noqa: PLC0415
    except ImportError:
        return None
    started = time.perf_counter()
    packets = [mqtt5.PublishPacket("bench/topic", PAYLOAD).write() for _ in range(COUNT)]
    encoded = time.perf_counter() - started
    stream = memoryview(b"".join(packets))
    read = mqtt5.read
    started = time.perf_counter()
    offset = 0
    while offset < len(stream):
        _, size = read(stream[offset:])
        offset += size
    return encoded, time.perf_counter() - started


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest of several runs (the machine is shared: the best is the least disturbed)."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> int:
    encoded, decoded = best([ours() for _ in range(3)])
    print(f"taktora packets (pure Python, 3.1.1): encode {rate(encoded)}, decode {rate(decoded)}")
    runs = [found for found in (native() for _ in range(3)) if found is not None]
    found = best(runs) if runs else None
    if found is None:
        print("mqtt5 not installed (pip install mqtt5)")
    else:
        print(
            f"mqtt5 (Rust, MQTT 5 only):          encode {rate(found[0])}, decode {rate(found[1])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
