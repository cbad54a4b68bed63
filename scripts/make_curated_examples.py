"""Build the bundled multi-study examples (src/linsig/data/example/{bladder,ovarian}.h5ad).

Sources (each folder's README gives the git blobs and the R export script):

* ``curated_bladder``: curatedBladderData 1.43.0 (Bioconductor, Artistic-2.0), 5 studies,
  200 samples × 3,319 genes; GSE1827 is two-colour log ratios with 14 % missing values.
* ``curated_ovarian``: curatedOvarianData 1.45.0 (Bioconductor, Artistic-2.0), GSE6822, GSE8842
  and GSE51088, 321 samples × 1,620 genes; two two-colour studies with a few missing values.

Values are kept as stored (``signif(x, 4)``, mixed scales across studies) and missing values as
NaN: pooling them is what ``--normalize`` and ``--missing`` are for.

Run: python scripts/make_curated_examples.py ../shared/data   (writes both files)
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

SETS = {
    "bladder": ("curated_bladder", "summarystage",
                "curatedBladderData 1.43.0 (Bioconductor; Riester), 5 studies pooled on shared genes, "
                "values as stored (signif 4; log2 intensities and two-colour log ratios); Artistic-2.0"),
    "ovarian": ("curated_ovarian", "summarygrade",
                "curatedOvarianData 1.45.0 (Bioconductor; Ganzfried et al. 2013), GSE6822, GSE8842 and "
                "GSE51088 pooled on shared genes, values as stored (signif 4; log2 intensities and "
                "two-colour log ratios); Artistic-2.0"),
}

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
out_dir = Path(__file__).resolve().parents[1] / "src/linsig/data/example"
for name, (folder, label, provenance) in SETS.items():
    src = root / folder
    # keep_default_na with only "NA": gene symbols such as "NAN" or "NA" must stay names
    expr = pd.read_csv(src / "expr.tsv.gz", sep="\t", index_col=0, dtype={"sample_id": str},
                       keep_default_na=False, na_values=["NA"])
    meta = pd.read_csv(src / "meta.tsv", sep="\t", index_col=0, dtype=str, keep_default_na=False,
                       na_values=["NA"])
    if not expr.index.equals(meta.index):
        raise SystemExit(f"{src}: expr.tsv.gz and meta.tsv list different samples")
    obs = pd.DataFrame(index=expr.index.astype(str))
    obs.index.name = None
    for col in meta.columns:
        obs[col] = meta[col].astype("category")
    X = expr.to_numpy(dtype=np.float32)  # NA → NaN
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(expr.columns.astype(str), name=None)))
    # "provenance", not "source": linsig names the file (its "source") in error messages
    adata.uns["linsig"] = {"dataset": name, "provenance": provenance, "label": label, "group": "study"}
    out = out_dir / f"{name}.h5ad"
    adata.write_h5ad(out, compression="gzip", compression_opts=9)
    print(out, adata.shape, f"NaN: {int(np.isnan(X).sum())}", f"{out.stat().st_size:,} bytes")
