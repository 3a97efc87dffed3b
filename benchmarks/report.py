"""Benchmark results as JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import asyncio_contenders, scaleout


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{results['date']}; {m['cpu']}, {m['cores']} cores; Python {m['python']}; "
        f"median of {results['repeats']} alternating runs of {results['messages_per_run']:,} "
        f"messages; command `make bench`{' (quick mode: harness check only)' if results['quick'] else ''}.",
        "",
    ]
    lines += capacity_tables(results)
    if "outbound" not in results.get("mosquitto", {}):  # one part of the suite (--only)
        return "\n".join([*lines, asyncio_contenders.markdown(results), *target_table(results)])
    lines += ["## Throughput on mosquitto (msg/s, end to end)", ""]
    for direction in ("outbound", "inbound"):
        table = results["mosquitto"][direction]
        names = list(next(iter(table.values())))
        lines += [
            f"### {direction.capitalize()}",
            "",
            "| case | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for key, rates in table.items():
            lines.append(f"| {key} | " + " | ".join(f"{rates[n]:,.0f}" for n in names) + " |")
        lines.append("")
    lat = results["mosquitto"]["latency"]
    lines += [
        "## Latency at 1,000 msg/s (round trip, QoS 0, 64 B)",
        "",
        "| contender | p50 (ms) | p99 (ms) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} |" for name, v in lat.items()]
    lines += [
        "",
        "## Demultiplexing (inbound msg/s to one reader)",
        "",
        "| distinct filters | msg/s |",
        "|---|---|",
    ]
    lines += [f"| {n} | {rate:,.0f} |" for n, rate in results["mosquitto"]["demux"].items()]
    lines += ["", "## Memory (RSS growth)", "", "| case | growth (MB) | details |", "|---|---|---|"]
    for name, memory in results["memory"].items():
        details = ", ".join(f"{k} {v:,.0f}" for k, v in memory.items() if k != "rss_growth_mb")
        lines.append(f"| {name} | {memory['rss_growth_mb']:.1f} | {details} |")
    lines += [asyncio_contenders.markdown(results) + scaleout.markdown(results)]
    lines += ["", "## amqtt in-process (msg/s; broker shares the GIL)", ""]
    for direction in ("outbound", "inbound"):
        names = list(next(iter(results["amqtt"].values()))[direction])
        lines += [
            "| " + direction + " | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for key, both in results["amqtt"].items():
            lines.append(
                f"| {key} | " + " | ".join(f"{both[direction][n]:,.0f}" for n in names) + " |"
            )
        lines.append("")
    if "kit_seconds" in results:
        lines += ["", f"Conformance kit run time: {results['kit_seconds']:.1f} s."]
    lines += ["", *target_table(results)]
    return "\n".join(lines) + "\n"


def target_table(results: dict[str, Any]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | threshold | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(
            f"| {t['target']} | {t['value']} | {t['threshold']} | {'yes' if t['met'] else '**no**'} |"
        )
    return lines


CAPACITY_TITLES = {
    "publish": "Publish capacity: N publishes, then one QoS 1 publish acknowledged",
    "drain": "Drain: a backlog the broker already holds, read through the reader API",
}


def capacity_tables(results: dict[str, Any]) -> list[str]:
    """msg/s per contender, then the connector's ratio to every other contender."""
    if "capacity" not in results:
        return []
    lines = [
        "## Capacity on mosquitto (msg/s, 64 B)",
        "",
        f"{results['capacity_messages']:,} messages per run; "
        "`python -m benchmarks.run --only capacity` runs this part alone.",
        "",
    ]
    for case, table in results["capacity"].items():
        names = list(next(iter(table.values())))
        others = [n for n in names if n != "connector"]
        lines += [
            f"### {CAPACITY_TITLES[case]}",
            "",
            "| case | "
            + " | ".join(names)
            + " | "
            + " | ".join(f"connector / {n}" for n in others)
            + " |",
            "|---" * (len(names) + len(others) + 1) + "|",
        ]
        for key, rates in table.items():
            ours = rates["connector"]
            lines.append(
                f"| {key} | "
                + " | ".join(f"{rates[n]:,.0f}" for n in names)
                + " | "
                + " | ".join(f"{ours / rates[n]:.2f}x" for n in others)
                + " |"
            )
        lines.append("")
    return lines


def chart(results: dict[str, Any], path: Path) -> None:
    if "outbound" not in results.get("mosquitto", {}):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for axis, direction in zip(axes, ("outbound", "inbound"), strict=True):
        table = results["mosquitto"][direction]
        cases = list(table)
        names = list(next(iter(table.values())))
        width = 0.8 / len(names)
        for index, name in enumerate(names):
            xs = [i + index * width for i in range(len(cases))]
            axis.bar(xs, [table[c][name] for c in cases], width, label=name)
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))], cases, rotation=15)
        axis.set_title(f"{direction} on mosquitto (msg/s)")
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    chart(results, out / "chart.png")
