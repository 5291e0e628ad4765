"""The plot of bench/compare/results.json: deliveries/s at saturation and p99 latency at a fixed
rate against the number of subscribers, gigwire and python-socketio side by side.

    .venv/bin/python -m bench.compare.plot     # writes bench/compare/compare.png

matplotlib is a bench-only dependency: `pip install -e '.[bench]'`."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Read results.json next to this file and write compare.png."""
    results = json.loads((HERE / "results.json").read_text())
    rate = results["args"]["rate"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, style in zip(results["systems"], ("o-", "s--"), strict=True):
        points = sorted(system["points"], key=lambda p: p["subscribers"])
        n = [p["subscribers"] for p in points]
        left.plot(n, [p["saturation"]["deliveries_per_s"] for p in points], style, label=system["system"])
        right.plot(n, [p["latency"]["p99_ms"] for p in points], style, label=system["system"])
    left.set(xscale="log", xlabel="subscribers in the room", ylabel="deliveries/s at saturation")
    left.set_title("Throughput (two processes, one Redis)")
    right.set(xscale="log", yscale="log", xlabel="subscribers in the room", ylabel="p99 latency (ms)")
    right.set_title(f"p99 latency at {rate:,.0f} deliveries/s")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.tight_layout()
    fig.savefig(HERE / "compare.png", dpi=110)
    print(f"wrote {HERE / 'compare.png'}")


if __name__ == "__main__":
    main()
