"""A/B of two builds of the connector in one run: what a change costs on the hot path.

    python benchmarks/ab.py --before REV [--after WORKTREE] [--rounds 5] [--count 20000]

``REV`` (a git revision, e.g. the commit before a change) is installed into a
temporary folder; the checkout is the "after". Both run the same measurements
against one mosquitto, alternating A, B, B, A, ... so that drift of the machine
falls on both alike: the reference connector sending ``count`` messages (QoS 0 and
QoS 1, ``send()`` one at a time) and receiving them (``recv()`` one at a time). Prints
each one's median msg/s and the ratio after/before; writes ``--json``.

``make bench`` runs it for the metrics counters (``--before`` the commit that added
them, ``--label metrics``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE = """
import sys
from benchmarks.contenders import in_connector, out_connector
import taktora_connector.adapters.mqtt.connector as c
port, count, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
direction, qos = what.split("-q")
run = out_connector if direction == "send" else in_connector
seconds = run(port, int(qos), b"x" * 64, count)
print(count / seconds, c.__file__)
"""
MEASUREMENTS = ("send-q0", "send-q1", "recv-q0", "recv-q1")


def install(revision: str, into: Path) -> Path:
    """``revision`` of this repository installed (without dependencies) into ``into``."""
    tree = into / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
        check=True,
        capture_output=True,
    )
    target = into / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(tree),
        ],
        check=True,
    )
    return target


def measure(site: Path | None, port: int, count: int, what: str) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(([str(site)] if site is not None else []) + [str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(port), str(count), what],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rate, source = done.stdout.split()
    imported = Path(source).resolve()
    if (site is not None) != imported.is_relative_to(Path(tempfile.gettempdir()).resolve()):
        raise SystemExit(f"the {'A' if site else 'B'} run imported the wrong build: {imported}")
    return float(rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the A build")
    parser.add_argument("--label", default="change")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/ab.json"))
    args = parser.parse_args()
    from taktora_connector.conformance.brokers import MosquittoBroker

    with tempfile.TemporaryDirectory(prefix="taktora-ab-") as temp, MosquittoBroker() as broker:
        print(f"==> A/B for {args.label}: {args.before} (A) against this checkout (B)")
        before = install(args.before, Path(temp))
        try:
            rates: dict[str, dict[str, list[float]]] = {m: {"A": [], "B": []} for m in MEASUREMENTS}
            for round_ in range(args.rounds):
                order = (
                    (("A", before), ("B", None))
                    if round_ % 2 == 0
                    else (("B", None), ("A", before))
                )
                for what in MEASUREMENTS:
                    for name, site in order:
                        rates[what][name].append(measure(site, broker.port, args.count, what))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(temp) / "tree")],
                check=False,
                capture_output=True,
            )
    report: dict[str, object] = {"before": args.before, "label": args.label, "rounds": args.rounds}
    print(
        f"{'measurement':12} {'A msg/s':>10} {'B msg/s':>10} {'B/A':>6}   ({args.rounds} rounds, medians)"
    )
    for what, pair in rates.items():
        a, b = statistics.median(pair["A"]), statistics.median(pair["B"])
        report[what] = {"A": pair["A"], "B": pair["B"], "ratio": b / a}
        print(f"{what:12} {a:10,.0f} {b:10,.0f} {b / a:6.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
