"""``linsig locate``'s files: genes.parquet, pairs.parquet, locate.json and the figures.

The three tables are staged and published as one set (:func:`linsig.outputs.write_set`), figures
first, so ``locate.json`` never names figures that are not there.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

import pandas as pd

from linsig.outputs import atomic_write_bytes, write_set

GENES_FILE, PAIRS_FILE, JSON_FILE = "genes.parquet", "pairs.parquet", "locate.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "task"


def _clean(x):
    """JSON without NaN (``null`` instead): locate.json must parse anywhere."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return _clean(x.item())
    return x


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_outputs(out_dir: str | os.PathLike, results: list, config: dict, formats=("png", "svg")) -> Path:
    """Write every result's tables (a ``task`` column tells them apart), figures and locate.json.

    ``locate.json``'s top-level ``form``, ``beyond_linear`` and ``n_genes_q05`` describe the
    first (for a binary task, the only) task; ``tasks`` holds every task's own.
    """
    from linsig.locate.figures import FIGURES

    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tasks = []
    for result in results:
        slug = _slug(result.task) if len(results) > 1 else ""
        figures = {}
        for name, make in FIGURES.items():
            fig = make(result)
            files = {}
            for fmt in formats:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, dpi=110)
                rel = f"figures/locate{'_' + slug if slug else ''}_{name}.{fmt}"
                atomic_write_bytes(out_dir / rel, buf.getvalue())
                files[fmt] = rel
            import matplotlib.pyplot as plt

            plt.close(fig)
            figures[name] = files
        summary = result.summary()
        summary["beyond_linear"] = {k: v for k, v in summary["beyond_linear"].items()}
        summary["top_genes"] = result.genes.head(10)[["gene", "rank", "q_value", "form"]].to_dict("records")
        summary["top_pairs"] = result.pairs.head(5)[["gene_a", "gene_b", "rank", "q_value"]].to_dict("records")
        summary["figures"] = figures
        tasks.append(summary)
    genes = pd.concat([r.genes.assign(task=r.task) for r in results], ignore_index=True)
    pairs = pd.concat([r.pairs.assign(task=r.task) for r in results], ignore_index=True)
    first = tasks[0]
    doc = {"form": {"additive": first["form"]["additive"], "interaction": first["form"]["interaction"]},
           "beyond_linear": {"linear": first["beyond_linear"]["linear"],
                             "combined": first["beyond_linear"]["combined"],
                             "p_value": first["beyond_linear"]["p_value"]},
           "n_genes_q05": first["n_genes_q05"], "task": first["task"], "tasks": tasks, "config": config}
    write_set([(out_dir / GENES_FILE, _parquet(genes)), (out_dir / PAIRS_FILE, _parquet(pairs)),
               (out_dir / JSON_FILE, json.dumps(_clean(doc), indent=2).encode("utf-8"))])
    return out_dir / JSON_FILE
