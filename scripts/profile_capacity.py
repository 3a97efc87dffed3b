"""Run the connector's capacity cases in a loop, for a profiler to watch (py-spy).

    py-spy record --gil --rate 250 --format raw -o drain.txt -- \
        .venv/bin/python scripts/profile_capacity.py drain
    python scripts/profile_capacity.py --summary drain.txt

``--summary`` prints the functions that held the GIL most (own samples).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run(case: str, qos: int, rounds: int, count: int) -> None:
    from benchmarks import capacity as k  # noqa: PLC0415 - after the path is set
    from taktora_connector.conformance.brokers import MosquittoBroker  # noqa: PLC0415

    with MosquittoBroker(extra_config="queue_qos0_messages true") as broker:
        for _ in range(rounds):
            if case == "drain":
                # The backlog is published by another process: the profile shows the reader.
                code = (
                    "from benchmarks.capacity import prepare_backlog;"
                    f"print(*prepare_backlog({broker.port}, {qos}, b'x' * 64, {count}))"
                )
                made = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                )
                ident, topic = made.stdout.split()
                started = time.perf_counter()
                k.drain_connector(broker.port, qos, count + 1, ident, topic)
                seconds = time.perf_counter() - started
            else:
                seconds = k.publish_connector(broker.port, qos, b"x" * 64, count)
            print(f"{case} QoS {qos}: {count / seconds:,.0f} msg/s", flush=True)


def summary(path: Path, top: int) -> None:
    """Own samples per function (lines summed) from py-spy's raw (collapsed stack) output."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frame = stack.split(";")[-1]
        name, _, where = frame.partition(" (")
        own[f"{name} ({where.rsplit(':', 1)[0]})"] += samples
    for frame, samples in own.most_common(top):
        print(f"{100 * samples / total:5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", nargs="?", choices=("drain", "publish"), default="drain")
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--summary", type=Path, help="summarise a py-spy raw profile instead")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.summary is not None:
        summary(args.summary, args.top)
    else:
        run(args.case, args.qos, args.rounds, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
