"""Pictures of what ``linsig locate`` found: top genes after removal, top pairs, and the form."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a window (as linsig.plots)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CLASS_COLORS = ("#4477AA", "#EE6677")


def genes_figure(result, n: int = 6) -> Figure:
    """Class-wise distributions after removal of the ``n`` top genes (violins with the points)."""
    genes = result.genes.head(n)
    cols = min(3, max(len(genes), 1))
    rows = max(1, int(np.ceil(len(genes) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    classes = list(dict.fromkeys(sorted(set(result.labels))))
    rng = np.random.default_rng(0)
    for ax, row in zip(axes.ravel(), genes.itertuples()):
        values = [result.removed[row.gene].to_numpy()[result.labels == c] for c in classes]
        parts = ax.violinplot(values, showextrema=False)
        for body, color in zip(parts["bodies"], CLASS_COLORS * 4):
            body.set_facecolor(color)
            body.set_alpha(0.35)
        for i, (v, color) in enumerate(zip(values, CLASS_COLORS * 4)):
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(v)), v, s=4, color=color, alpha=0.6, linewidths=0)
        ax.set_xticks(range(1, len(classes) + 1), [str(c)[:14] for c in classes], fontsize=8)
        ax.set_title(f"#{row.rank} {row.gene[:22]}\n{row.form}, q={row.q_value:.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(genes):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("expression after removal", fontsize=8)
    fig.suptitle(f"{result.task}: top genes after linear signal removal (held-out folds)", fontsize=9)
    fig.tight_layout()
    return fig


def pairs_figure(result, n: int = 3) -> Figure:
    """Scatter of the ``n`` top pairs after removal, coloured by class."""
    pairs = result.pairs.head(n)
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(3.4 * max(len(pairs), 1), 3.2), squeeze=False)
    classes = sorted(set(result.labels))
    for ax, row in zip(axes.ravel(), pairs.itertuples()):
        for c, color in zip(classes, CLASS_COLORS * 4):
            mask = result.labels == c
            ax.scatter(result.removed[row.gene_a].to_numpy()[mask], result.removed[row.gene_b].to_numpy()[mask],
                       s=6, color=color, alpha=0.6, linewidths=0, label=str(c)[:14])
        ax.set_xlabel(row.gene_a[:24], fontsize=8)
        ax.set_ylabel(row.gene_b[:24], fontsize=8)
        ax.set_title(f"pair #{row.rank}: q={row.q_value:.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
    if len(pairs):
        axes[0, 0].legend(fontsize=7, markerscale=2)
    else:
        axes[0, 0].text(0.5, 0.5, "no pairs tested", ha="center", va="center")
        axes[0, 0].axis("off")
    fig.suptitle(f"{result.task}: top gene pairs after removal", fontsize=9)
    fig.tight_layout()
    return fig


def form_figure(result) -> Figure:
    """Mean balanced accuracy: additive vs combining after removal; linear vs linear + non-linear before."""
    bl = result.beyond_linear
    names = ["additive\n(removed)", "combining\n(removed)", "linear\n(original)", "linear +\nnon-linear"]
    values = [result.form["additive"], result.form["interaction"], bl["linear"], bl["combined"]]
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.bar(range(4), values, color=["#CCBB44", "#AA3377", "#4477AA", "#228833"])
    for i, v in enumerate(values):
        if np.isfinite(v):
            ax.text(i, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(4), names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("balanced accuracy", fontsize=8)
    ax.set_title(f"{result.task}: form of the signal; adds to linear: p={bl['p_value']:.2g}", fontsize=9)
    fig.tight_layout()
    return fig


FIGURES = {"genes": genes_figure, "pairs": pairs_figure, "form": form_figure}
