"""How the report prints: a plain-text table, figures formatted or "-" when missing, ratios,
PASS/FAIL."""

from __future__ import annotations

from collections.abc import Callable

# how a section records one of issue 6's targets: (name, value, goal, ok; None: not measured)
Target = Callable[[str, str, str, bool | None], None]


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def print_rounds(systems: dict[str, dict], digits: int) -> None:
    """Under a table of median rounds: every round's req/s."""
    several = {
        name: r["rounds_rps"] for name, r in systems.items() if len(r.get("rounds_rps", [])) > 1
    }
    if several:
        print(
            "  each row is the median of its rounds; req/s of every round: "
            + "; ".join(
                f"{name} {' / '.join(f(x, digits) for x in rps)}" for name, rps in several.items()
            )
        )


def f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
