"""The broker matrix: the kit on both connectors against amqtt, mosquitto and RabbitMQ.

    python scripts/broker_matrix.py [--out reports/matrix] [--doc docs/broker-matrix.md]

Runs ``taktora-conformance`` six times (the reference and the gmqtt example, each on
the kit's amqtt, on mosquitto and on a RabbitMQ node the kit starts), then twice more
for the reference with ``--broker-url``: once on a single RabbitMQ node and once on
node 1 of a three-node RabbitMQ cluster (``RabbitMQCluster``), which must give the
same results scenario by scenario; then ``taktora-conformance compare`` over the
eight reports, and writes the Markdown page
that ``docs/broker-matrix.md`` is: the comparison, how long each run took, and what
each broker cannot do with the probe that found out. Exit status 1 when a run FAILs
(PARTIAL is what a broker without a feature gives, and is expected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from taktora_connector.conformance.brokers import RabbitMQBroker
from taktora_connector.conformance.rabbitmq_cluster import RabbitMQCluster

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONNECTORS = {
    "reference": [],
    "gmqtt": ["--connector-factory", "gmqtt_connector:make_connector"],
}
BROKERS = ("amqtt", "mosquitto", "rabbitmq")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/matrix")
    parser.add_argument("--doc", default="docs/broker-matrix.md")
    args = parser.parse_args()
    out = Path(args.out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    timings: dict[str, float] = {}
    reports = []
    for broker in BROKERS:
        for name, extra in CONNECTORS.items():
            run = f"{name}-{broker}"
            report_dir = out / run
            print(f"==> {run}", flush=True)
            started = time.monotonic()
            code = run_kit(["--broker", broker, *extra], report_dir, env)
            timings[run] = time.monotonic() - started
            if code not in (0, 1, 3):
                print(f"{run}: the kit did not run (exit {code})", file=sys.stderr)
                return 2
            reports.append(report_dir / "report.json")
    # The same kit through --broker-url: one RabbitMQ node, then one node of a cluster.
    by_url: dict[str, Path] = {}
    made: tuple[tuple[str, type[RabbitMQBroker] | type[RabbitMQCluster]], ...] = (
        ("reference-rabbitmq-url", RabbitMQBroker),
        ("reference-rabbitmq-cluster", RabbitMQCluster),
    )
    for run, kind in made:
        print(f"==> {run} (starting the broker for it)", flush=True)
        with kind() as started_broker:
            port = (
                started_broker.port
                if isinstance(started_broker, RabbitMQBroker)
                else started_broker.servers[0][1]
            )
            report_dir = out / run
            started = time.monotonic()
            code = run_kit(["--broker-url", f"mqtt://127.0.0.1:{port}"], report_dir, env)
            timings[run] = time.monotonic() - started
        if code not in (0, 1, 3):
            print(f"{run}: the kit did not run (exit {code})", file=sys.stderr)
            return 2
        reports.append(report_dir / "report.json")
        by_url[run] = report_dir / "report.json"
    outcomes = {run: scenario_outcomes(path) for run, path in by_url.items()}
    single, cluster = outcomes.values()
    differ = sorted(k for k in single.keys() | cluster.keys() if single.get(k) != cluster.get(k))
    subprocess.run(
        [str(BIN / "taktora-conformance"), "compare", *map(str, reports), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    verdicts = {r.parent.name: json.loads(r.read_text())["verdict"] for r in reports}
    page = [
        "# The broker matrix",
        "",
        "The conformance kit on the reference connector and on the gmqtt example",
        "(`examples/gmqtt_connector/`), each against the kit's in-process amqtt, a",
        "mosquitto per scenario and one RabbitMQ node (Debian's `rabbitmq-server` with",
        "`rabbitmq_mqtt`) the kit starts for the run. Made by",
        "`python scripts/broker_matrix.py` (`make matrix`; CI runs it); the reports",
        f"behind it are in `{out}/`.",
        "",
        "A broker without a feature a scenario needs makes that scenario NOT RUN, with",
        "the kit's probe as the reason: that is a PARTIAL, never a FAIL of the",
        "connector. RabbitMQ serves the whole run: the kit starts it with a TLS listener",
        "and adds the credential scenarios' users to it, so those run there too.",
        "",
        "The last two rows are the reference through `--broker-url`, once on a single",
        "RabbitMQ node and once on node 1 of a three-node RabbitMQ cluster on loopback",
        "(`make cluster-test` measures failover on the same cluster). Through a URL the",
        "kit cannot add users or a TLS listener, so those scenarios are NOT RUN on both;",
        "scenario by scenario the two give "
        + ("the same results." if not differ else f"different results for {', '.join(differ)}."),
        "",
        "| run | verdict | time (s) |",
        "|---|---|---|",
        *(f"| {run} | {verdicts[run]} | {timings[run]:.0f} |" for run in timings),
        "",
    ]
    compared = (out / "compare.md").read_text().splitlines()
    # The comparison's links point into the reports, which are not committed.
    page += [
        line.replace("](", "](../" + str(out) + "/") if "](" in line else line
        for line in compared[1:]
    ]
    Path(args.doc).write_text("\n".join(page) + "\n", encoding="utf-8")
    print(f"wrote {args.doc}")
    if differ:
        print(f"the cluster node and the single node differ on: {', '.join(differ)}")
    return 1 if "FAIL" in verdicts.values() or differ else 0


def run_kit(arguments: list[str], report_dir: Path, env: dict[str, str]) -> int:
    """One quiet kit run writing its reports to ``report_dir``; its exit status."""
    command = [str(BIN / "taktora-conformance"), "-q", *arguments, "--report-dir", str(report_dir)]
    return subprocess.run(command, env=env, check=False).returncode


def scenario_outcomes(report: Path) -> dict[str, str]:
    """Each scenario's outcome in a kit report, by its TEST id."""
    data = json.loads(report.read_text())
    return {s.get("id") or s["nodeid"]: s["outcome"] for s in data["scenarios"]}


if __name__ == "__main__":
    sys.exit(main())
