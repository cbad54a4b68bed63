"""The report's "Where is the signal?" section, from the ``linsig locate`` files of a run folder.

``linsig report`` (and ``linsig demo``) add it when the run folder holds ``locate.json``, or a
``locate/`` folder that does. Figures are embedded only when they are plain files inside that
folder (:func:`linsig.outputs.confined`): a run folder is data, not instructions.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from linsig.locate.output import JSON_FILE
from linsig.outputs import confined


def find(run_dir: str | os.PathLike) -> Path | None:
    """The folder holding the locate files of ``run_dir`` (itself or ``run_dir/locate``), or None."""
    for folder in (Path(run_dir), Path(run_dir) / "locate"):
        if (folder / JSON_FILE).is_file():
            return folder
    return None


def _f(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _p(x) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def _form_words(form: dict) -> str:
    add, inter = form.get("additive"), form.get("interaction")
    if add is None or inter is None:
        return "form not measured"
    if inter < 0.55:
        return "little signal left after removal for either model"
    if inter - add > 0.05:
        return "the signal lies in combinations of genes (only the combining model reaches it)"
    return "the signal is per gene (the additive model reaches the combining one)"


def _task_html(folder: Path, t: dict) -> str:
    e = html.escape
    bl = t["beyond_linear"]
    adds = bl.get("p_value") is not None and bl["p_value"] < 0.05
    rows = "".join(f"<tr><td>{g['rank']}</td><td>{e(str(g['gene']))}</td><td>{_p(g['q_value'])}</td>"
                   f"<td>{e(g['form'])}</td></tr>" for g in t["top_genes"])
    pairs = "".join(f"<tr><td>{p['rank']}</td><td>{e(str(p['gene_a']))} × {e(str(p['gene_b']))}</td>"
                    f"<td>{_p(p['q_value'])}</td></tr>" for p in t["top_pairs"])
    figs = []
    for name, files in t.get("figures", {}).items():
        png = confined(folder, files.get("png", ""))
        if png is not None:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            figs.append(f'<figure><img alt="locate {e(name)}" src="data:image/png;base64,{data}"></figure>')
    return f"""<h3>{e(t['task'])} (class 1: {e(t.get('positive', ''))})</h3>
<ul class=lines>
<li><b>Which genes:</b> {t['n_genes_q05']} at q &lt; 0.05 ({t.get('n_pairs_q05', 0)} pairs).</li>
<li><b>What form:</b> additive {_f(t['form'].get('additive'))} vs combining {_f(t['form'].get('interaction'))}
balanced accuracy after removal: {_form_words(t['form'])}.</li>
<li><b>Does it add to linear?</b> linear {_f(bl.get('linear'))} vs linear + non-linear {_f(bl.get('combined'))}
(corrected t, one-sided p = {_p(bl.get('p_value'))}): {'complementary — the non-linear part adds' if adds else
'no evidence that it adds (redundant with the linear signal, or too weak)'}.</li>
</ul>
<table><thead><tr><th>rank</th><th>gene</th><th>q</th><th>form</th></tr></thead><tbody>{rows}</tbody></table>
<table><thead><tr><th>rank</th><th>pair</th><th>q</th></tr></thead><tbody>{pairs}</tbody></table>
{''.join(figs)}"""


def section_html(run_dir: str | os.PathLike) -> str:
    """The section's HTML, or ``""`` when the run folder has no (readable) locate.json."""
    folder = find(run_dir)
    if folder is None:
        return ""
    try:
        doc = json.loads((folder / JSON_FILE).read_text(encoding="utf-8"))
        tasks = "".join(_task_html(folder, t) for t in doc["tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return "<h2>Where is the signal?</h2><p>locate.json could not be read; rerun <code>linsig locate</code>.</p>"
    return f"""<h2 id="locate">Where is the signal? (<code>linsig locate</code>)</h2>
<p class=muted>After removing the linear signal inside each fold: genes whose class distributions still
differ (spread and shape tests) or that a GBDT uses (permutation importance against permuted labels),
with Benjamini–Hochberg q-values; pairs that act together (a combining against an additive model on
the pair); an additive against a combining model; and, on the original data, logreg against logreg plus
a GBDT fitted to what it leaves. See docs/locate.md.</p>
{tasks}"""
