"""Matplotlib set-up shared by the experiments: headless backend, one style, PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen here, nor in CI

import matplotlib.pyplot as plt

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 130,
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": "small",
    }
)


def save(fig: plt.Figure, path: Path) -> str:
    """Save `fig` as PNG at `path`, close it, and return the file name."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


__all__ = ["plt", "save"]
