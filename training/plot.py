"""PNG figures for `charcode eval --plot` (matplotlib is optional: `pip install 'charcode[plot]'`)."""

from __future__ import annotations

from pathlib import Path


class PlotUnavailable(Exception):
    """matplotlib is not installed; the message says how to get it."""


def pyplot():
    """matplotlib.pyplot with a file-only backend, or PlotUnavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'charcode[plot]' (or matplotlib)"
        ) from None
    return plt


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def bits_by_position(bins: list[dict], path: Path, title: str) -> Path:
    """Bits per character against position in the file (log x axis, one point per bin)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    xs = [(b["start"] + b["end"] - 1) / 2 + 1 for b in bins]  # +1: position 0 on a log axis
    ax.plot(xs, [b["bits_per_char"] for b in bins], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("position in the file (characters, log scale; bin midpoints + 1)")
    ax.set_ylabel("bits per character")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return save(fig, path)


def bars(
    groups: dict[str, dict[str, float]], path: Path, ylabel: str, title: str, percent: bool = True
) -> Path:
    """Grouped bars: groups {group: {series: value}}, one colour per series."""
    plt = pyplot()
    names = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    width = 0.8 / max(1, len(series))
    for i, s in enumerate(series):
        values = [groups[g].get(s, 0.0) * (100 if percent else 1) for g in names]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
        rects = ax.bar(xs, values, width, label=s)
        ax.bar_label(rects, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return save(fig, path)
