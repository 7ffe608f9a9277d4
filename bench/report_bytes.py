"""The report of part 4, bytes: a table for compress and one for passthrough, ours against
thumbor, and the compress target per format."""

from __future__ import annotations

import statistics

from bench.tables import Target, f, ratio, table, verdict

SSIM_TOLERANCE = 0.001  # "equal SSIM": ours may be this much lower


def bytes_report(rows_in: list[dict], target: Target) -> None:
    by = {(r["source"], r["kind"], r["system"]): r for r in rows_in}
    sources = list(dict.fromkeys(r["source"] for r in rows_in))
    for kind, title in (
        ("compress", "4a. bytes: compress q75, full size, same format"),
        ("resize", "4b. bytes: passthrough to 800 px, JPEG q80"),
    ):
        rows = [bytes_row(s, by[(s, kind, "ours")], by.get((s, kind, "thumbor"))) for s in sources]
        table(
            title + " (KB; SSIM of luminance against the source)",
            [
                "source",
                "source KB",
                "size",
                "ours KB",
                "thumbor KB",
                "ours/thumbor",
                "ours SSIM",
                "thumbor SSIM",
                "<= bytes, >= SSIM",
                "note",
            ],
            rows,
        )
    for fmt in ("JPEG", "PNG"):
        compress_target(by, sources, fmt, target)


def bytes_row(s: str, ours: dict, th: dict | None) -> list[str]:
    """One source's row: ours, thumbor's (when measured), and whether ours is no worse."""
    better = None
    if th:
        tolerance = SSIM_TOLERANCE
        better = ours["bytes"] <= th["bytes"] and ours["ssim"] >= th["ssim"] - tolerance
    notes = ["source kept"] if ours["kept_source"] else []
    if th and th["format"] != ours["format"]:
        notes.append(f"thumbor: {th['format']}")
    return [
        s,
        f"{ours['source_bytes'] / 1e3:.0f}",
        f"{ours['width']}x{ours['height']}",
        f"{ours['bytes'] / 1e3:.1f}",
        f"{th['bytes'] / 1e3:.1f}" if th else "-",
        f(ratio(ours["bytes"], th["bytes"]) if th else None, 2),
        f(ours["ssim"], 4),
        f(th["ssim"], 4) if th else "-",
        verdict(better),
        ", ".join(notes),
    ]


def compress_target(by: dict, sources: list[str], fmt: str, target: Target) -> None:
    """compress of the sources in ``fmt``, all together: no more bytes than thumbor at an
    equal or better SSIM, each."""
    pairs = [
        (by[(s, "compress", "ours")], by.get((s, "compress", "thumbor")))
        for s in sources
        if by[(s, "compress", "ours")]["format"] == fmt
    ]
    if not pairs:
        return
    if any(th is None for _, th in pairs):
        target(f"bytes: compress {fmt} vs thumbor", "thumbor skipped", "", None)
        return
    ours_b = sum(o["bytes"] for o, _ in pairs)
    th_b = sum(t["bytes"] for _, t in pairs)
    worse = [o["source"] for o, t in pairs if o["ssim"] < t["ssim"] - SSIM_TOLERANCE]
    larger = [o["source"] for o, t in pairs if o["bytes"] > t["bytes"]]
    ours_s = statistics.fmean(o["ssim"] for o, _ in pairs)
    th_s = statistics.fmean(t["ssim"] for _, t in pairs)
    value = f"{ours_b / th_b:.2f}x bytes, mean SSIM {ours_s:.4f} vs {th_s:.4f}"
    if larger:
        value += f"; {len(larger)} larger"
    if worse:
        value += f"; {len(worse)} lower SSIM"
    target(
        f"bytes: compress {fmt} ({len(pairs)} sources) vs thumbor q75",
        value,
        "<= thumbor bytes at >= SSIM",
        not larger and not worse,
    )
