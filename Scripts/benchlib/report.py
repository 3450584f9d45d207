"""The results: medians over the repetitions, the markdown tables (with ratios to the reference
and to direct), the chart of the ratios, and the files written to --out."""

from __future__ import annotations

import json
import os
import statistics

from benchlib.lbconfigs import DIRECT, LB, REFERENCE
from benchlib.log import log
from benchlib.workloads import Workload


def medians(samples: list[dict]) -> dict:
    """(workload, lb) -> metric -> median over the successful samples."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    for s in samples:
        if "error" in s:
            continue
        d = acc.setdefault((s["workload"], s["lb"]), {})
        for k, v in s["metrics"].items():
            if isinstance(v, (int, float)):
                d.setdefault(k, []).append(float(v))
    return {key: {k: statistics.median(v) for k, v in d.items()} for key, d in acc.items()}


def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if v == int(v) and a < 1e15:
        return f"{int(v):,}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(v, ref) -> str:
    if v is None or ref in (None, 0):
        return "–"
    return f"{v / ref:.2f}"


UNITS = {
    "gbit_s": "Gbit/s ↑", "cpu_s_per_gb": "LB CPU-s/GB ↓", "lb_cpu_s": "LB CPU-s", "lb_cores": "LB cores busy",
    "lb_user_pct": "LB user %",
    "p50_us": "RTT p50 µs ↓", "p99_us": "p99 µs", "p999_us": "p99.9 µs", "cpu_us_per_exchange": "LB CPU-µs/exch ↓",
    "req_s": "req/s ↑", "cpu_us_per_req": "LB CPU-µs/req ↓", "errors": "errors",
    "page_requests": "status page requests", "kib_per_conn": "KiB/conn ↓", "rss_before_mib": "RSS before MiB", "rss_after_mib": "RSS after MiB", "conns": "conns",
}


def markdown(med: dict, samples: list[dict], workloads: list[Workload], lbs: list[LB], meta: dict) -> str:
    lines = [f"# Switchyard benchmark {meta['stamp']}", "",
             f"runs={meta['runs']} duration={meta['duration']}s workers(N)={meta['n']} host cores={os.cpu_count()} "
             f"kernel={os.uname().release}; medians of successful samples. "
             f"`×ref` = ratio to {REFERENCE} (pinned: LB on core 1, load+backends on core 0), "
             f"`×direct` = ratio to no LB. ↑ higher is better, ↓ lower is better.", ""]
    errors = {}
    for s in samples:
        if "error" in s:
            errors.setdefault((s["workload"], s["lb"]), []).append(s["error"])
    for w in workloads:
        cols = []
        for c in w.columns:
            cols.append((c, False))
            if c == w.primary[0]:
                cols += [(c, "ref"), (c, "direct")]
            elif c == w.cost:
                cols += [(c, "ref")]
        header = ["LB"]
        for c, r in cols:
            header.append(UNITS.get(c, c) if not r else ("×ref" if r == "ref" else "×direct"))
        lines += [f"## {w.name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        ref = med.get((w.name, REFERENCE), {})
        direct = med.get((w.name, DIRECT), {})
        for lb in lbs:
            m = med.get((w.name, lb.name))
            if m is None:
                err = errors.get((w.name, lb.name))
                if err:
                    lines.append(f"| {lb.name} | failed: {err[-1][:80].replace('|', '/')} |" + " |" * (len(header) - 2))
                continue
            row = [lb.name]
            for c, r in cols:
                if not r:
                    row.append(fmt(m.get(c)))
                elif r == "ref":
                    row.append(ratio(m.get(c), ref.get(c)))
                else:
                    row.append(ratio(m.get(c), direct.get(c)))
            lines.append("| " + " | ".join(row) + " |")
        if not lines[-1].startswith("| "):
            lines += ["", "_no samples_"]
        lines.append("")
    return "\n".join(lines + side_by_side(med, workloads, lbs))


def side_by_side(med: dict, workloads: list[Workload], lbs: list[LB]) -> list[str]:
    """A table of each LB that names another (`versus`, e.g. the status page open in a browser
    against no page) beside it, with the ratio of their LB CPU per unit of work; empty when the
    run has no such pair."""
    rows = []
    for w in workloads:
        for lb in lbs:
            this, other = med.get((w.name, lb.name), {}), med.get((w.name, lb.versus), {})
            if not lb.versus or w.cost is None or this.get(w.cost) is None or other.get(w.cost) is None:
                continue
            rows.append(f"| {w.name} | {lb.name} | {lb.versus} | {fmt(this[w.cost])} | {fmt(other[w.cost])} | "
                        f"{this[w.cost] / other[w.cost]:.3f} | {ratio(this.get(w.primary[0]), other.get(w.primary[0]))} |")
    if not rows:
        return []
    return ["## Side by side", "",
            "LB CPU per unit of work (the workload's cost column) of each LB against the LB it is set beside.", "",
            "| workload | LB | versus | its cost | versus cost | cost ratio | primary ratio |",
            "|---|---|---|---:|---:|---:|---:|", *rows, ""]


def chart(med: dict, workloads: list[Workload], lbs: list[LB], path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return False
    others = [lb for lb in lbs if lb.name != REFERENCE]
    cmap = plt.get_cmap("tab20")
    colors = {lb.name: cmap(i % 20) for i, lb in enumerate(others)}  # same colour in every panel
    panels = [("performance (primary metric) / haproxy-1t", lambda w: w.primary[0], workloads),
              ("LB CPU per unit of work / haproxy-1t (lower is better)", lambda w: w.cost,
               [w for w in workloads if w.cost])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(10, 1.6 * len(workloads) + 4), 9), squeeze=False)
    for ax, (title, metric_of, wls) in zip(axes[:, 0], panels):
        shown = [lb for lb in others
                 if not (lb.kind == "direct" and metric_of is not panels[0][1])
                 and any(med.get((w.name, lb.name), {}).get(metric_of(w)) is not None for w in wls)]
        width = 0.8 / max(1, len(shown))
        for i, lb in enumerate(shown):
            xs, ys = [], []
            for j, w in enumerate(wls):
                metric = metric_of(w)
                v = med.get((w.name, lb.name), {}).get(metric)
                r = med.get((w.name, REFERENCE), {}).get(metric)
                if v is not None and r:
                    xs.append(j + (i - (len(shown) - 1) / 2) * width)
                    ys.append(v / r)
            ax.bar(xs, ys, width, label=lb.name, color=colors[lb.name])
        ax.axhline(1.0, color="black", linewidth=0.8)
        labels = [f"{w.name}\n{metric_of(w)}{'' if w.primary[1] or metric_of(w) != w.primary[0] else ' (lower better)'}"
                  for w in wls]
        ax.set_xticks(range(len(wls)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(f"ratio to {REFERENCE}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=min(7, max(1, len(labels))), loc="upper center")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_results(out: str, stamp: str, meta: dict, samples: list[dict], workloads: list[Workload],
                  lbs: list[LB]) -> None:
    """Writes samples-STAMP.json, results-STAMP.md and ratios-STAMP.png into `out`, and prints the
    markdown to stdout."""
    med = medians(samples)
    md = markdown(med, samples, workloads, lbs, meta)
    with open(f"{os.path.join(out, 'samples-' + stamp)}.json", "w") as f:
        json.dump({"meta": meta, "samples": samples,
                   "medians": [{"workload": k[0], "lb": k[1], **v} for k, v in sorted(med.items())]}, f, indent=1)
    with open(os.path.join(out, f"results-{stamp}.md"), "w") as f:
        f.write(md + "\n")
    png = os.path.join(out, f"ratios-{stamp}.png")
    made = bool(med) and chart(med, workloads, lbs, png)
    print(md)
    log(f"wrote {out}/results-{stamp}.md, samples-{stamp}.json" + (f", ratios-{stamp}.png" if made else ""))
