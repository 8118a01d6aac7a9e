"""Bar chart of a bench/run.py result file (docs/s per method, the ceiling as a line,
copier CPU and RSS in the labels). Runs in bench/.venv-espy, which has matplotlib, so
matplotlib is no dependency of the project.

    python chart.py RESULTS.json OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    data = json.loads(open(sys.argv[1]).read())
    rows = data["results"]
    labels, rates, colors = [], [], []
    for r in rows:
        extra = []
        if r.get("cpu_s") is not None:
            extra.append(f"CPU {r['cpu_s']:.1f}s")
        if r.get("rss_mb") is not None:
            extra.append(f"RSS {r['rss_mb']:.0f}MB")
        if r.get("equal") is False:
            extra.append("COPY NOT EQUAL")
        labels.append(r["method"] + ("\n" + ", ".join(extra) if extra else ""))
        rates.append(r["docs_per_s"])
        colors.append("#9e9e9e" if r["kind"] == "ceiling" else "#1f77b4" if r["kind"] == "ours" else "#ff7f0e" if r["kind"] == "server" else "#7f7f7f")
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.6))
    y = range(len(rows))[::-1]
    ax.barh(list(y), rates, color=colors)
    for yi, rate, r in zip(y, rates, rows):
        ax.text(rate, yi, f" {rate:,.0f}  ({r['x_ceiling']:.2f}x)", va="center", fontsize=8)
    ax.axvline(data["ceiling_docs_per_s"], color="#444", linestyle="--", linewidth=1)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("documents per second (higher is better); dashed: destination bulk ceiling")
    m = data["machine"]
    ax.set_title(f"{data['docs']:,} docs, source ES {data['source_version']} over TLS -> ES {data['dest_version']}; "
                 f"{m['nproc']} cores, {m['mem_gib']} GiB", fontsize=9)
    ax.set_xlim(0, max(rates) * 1.3)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=90)


if __name__ == "__main__":
    main()
