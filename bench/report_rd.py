"""The report of bytes at equal quality (bench/bytes_rd.py): BD-rates against thumbor's JPEG
per format, workload and metric; compress time; the targets of issue 13; the curves as a PNG."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.bdrate import bd_rate
from bench.tables import Target, f, table, times

METRICS = ("ssimulacra2", "ssim")
JPEG_BYTES_GOAL = 0.80  # ours / thumbor's, JPEG, at equal SSIMULACRA2 (and SSIM no worse)
COMPRESS_TIME_GOAL = 1.0  # ours / thumbor's, compress of JPEG sources
WORKLOADS = {"400": "resize to 400 px", "1200": "resize to 1200 px", "compress": "compress"}


def curve(points: list[dict], source: str, workload: str, system: str, fmt: str) -> list[dict]:
    return sorted(
        (
            p
            for p in points
            if (p["source"], p["workload"], p["system"], p["format"])
            == (source, workload, system, fmt)
        ),
        key=lambda p: p["quality"],
    )


def ratios(points: list[dict], workload: str, fmt: str) -> dict[str, float | None]:
    """Per metric: ours in ``fmt`` over thumbor's JPEG, bytes at equal score (1 + BD-rate),
    the mean over the sources of the log ratio (a geometric mean)."""
    sources = list(dict.fromkeys(p["source"] for p in points))
    out: dict[str, float | None] = {}
    for metric in METRICS:
        logs = []
        for s in sources:
            ours = curve(points, s, workload, "ours", fmt)
            th = curve(points, s, workload, "thumbor", "jpeg")
            if len(ours) < 2 or len(th) < 2:
                continue
            try:
                bd = bd_rate(
                    [p["bytes"] for p in th],
                    [p[metric] for p in th],
                    [p["bytes"] for p in ours],
                    [p[metric] for p in ours],
                )
            except ValueError:  # the curves do not overlap: no figure for this source
                continue
            logs.append(bd)
        out[metric] = statistics.geometric_mean([1 + b for b in logs]) if logs else None
    return out


def rd_report(rd: dict, target: Target, plot: Path | None) -> dict:
    points = rd["points"]
    summary: dict = {}
    rows = []
    for workload, title in WORKLOADS.items():
        for fmt in ("jpeg", "webp", "avif"):
            if not any(p["workload"] == workload and p["format"] == fmt for p in points):
                continue
            r = ratios(points, workload, fmt)
            summary[f"{workload} {fmt}"] = r
            rows.append(
                [
                    title,
                    fmt.upper(),
                    times(r["ssimulacra2"]),
                    pct(r["ssimulacra2"]),
                    times(r["ssim"]),
                    pct(r["ssim"]),
                ]
            )
    sources = sorted({p["source"] for p in points})
    qualities = sorted({p["quality"] for p in points})
    table(
        f"4c. bytes at equal quality: ours against thumbor's JPEG, qualities "
        f"{qualities[0]}-{qualities[-1]}, {len(sources)} sources ({', '.join(sources)})",
        ["workload", "ours", "bytes @ SSIMULACRA2", "BD-rate", "bytes @ SSIM", "BD-rate"],
        rows,
    )
    print(
        "  bytes @ metric: ours / thumbor's at equal score (1 + Bjøntegaard delta rate, "
        "geometric mean over the sources)"
    )
    for workload, title in WORKLOADS.items():
        r = summary.get(f"{workload} jpeg")
        if not r:
            continue
        s2, ss = r["ssimulacra2"], r["ssim"]
        ok = None if s2 is None or ss is None else s2 <= JPEG_BYTES_GOAL and ss <= 1.0
        target(
            f"bytes: JPEG {title} vs thumbor, equal quality",
            f"{times(s2)} at equal SSIMULACRA2, {times(ss)} at equal SSIM",
            f"<= {JPEG_BYTES_GOAL:.2f}x (SSIMULACRA2), <= 1.00x (SSIM)",
            ok,
        )
    timing = rd.get("compress_ms") or []
    if timing:
        table(
            "4d. compress time: JPEG sources, q75, full size, one request at a time (median ms)",
            ["source", "ours ms", "thumbor ms", "ours/thumbor"],
            [
                [
                    t["source"],
                    f(t["ours_ms"], 0),
                    f(t["thumbor_ms"], 0),
                    times(t["ours_ms"] / t["thumbor_ms"]) if t["thumbor_ms"] else "-",
                ]
                for t in timing
            ],
        )
        measured = [t for t in timing if t["thumbor_ms"]]
        value = None
        if measured:
            value = sum(t["ours_ms"] for t in measured) / sum(t["thumbor_ms"] for t in measured)
        summary["compress_time_ratio"] = value
        target(
            "time: compress JPEG vs thumbor",
            times(value) if value is not None else "thumbor skipped",
            f"<= {COMPRESS_TIME_GOAL:.2f}x",
            None if value is None else value <= COMPRESS_TIME_GOAL,
        )
    if plot is not None:
        draw(points, plot)
        print(f"  rate-distortion curves: {plot}")
    return summary


def pct(value: float | None) -> str:
    return "-" if value is None else f"{(value - 1) * 100:+.1f}%"


def draw(points: list[dict], path: Path) -> None:
    """One panel per workload and metric: mean bytes per pixel against the mean score over
    the sources, at each quality, per system and format."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in WORKLOADS if any(p["workload"] == w for p in points)]
    fig, axes = plt.subplots(
        len(METRICS), len(workloads), figsize=(5 * len(workloads), 8), squeeze=False
    )
    series = [("thumbor", "jpeg", "thumbor 7.8 JPEG", "k")] + [
        ("ours", fmt, f"ours {fmt.upper()}", colour)
        for fmt, colour in (("jpeg", "tab:blue"), ("webp", "tab:green"), ("avif", "tab:red"))
    ]
    for col, workload in enumerate(workloads):
        for row, metric in enumerate(METRICS):
            ax = axes[row][col]
            for system, fmt, label, colour in series:
                pts = [
                    p
                    for p in points
                    if (p["workload"], p["system"], p["format"]) == (workload, system, fmt)
                ]
                if not pts:
                    continue
                qs = sorted({p["quality"] for p in pts})
                bpp = [
                    statistics.fmean(
                        8 * p["bytes"] / (p["width"] * p["height"])
                        for p in pts
                        if p["quality"] == q
                    )
                    for q in qs
                ]
                score = [statistics.fmean(p[metric] for p in pts if p["quality"] == q) for q in qs]
                ax.plot(bpp, score, "o-", color=colour, label=label, markersize=3)
            ax.set_xscale("log")
            ax.set_xlabel("bits per pixel (log)")
            ax.set_ylabel(metric.upper() if metric == "ssim" else "SSIMULACRA2")
            ax.set_title(f"{WORKLOADS[workload]}: {metric}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("rate-distortion, qualities 40-90, mean over the sources (bench/bytes_rd.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
