"""Build the bundled ALL example (src/linsig/data/example/ALL.h5ad) from shared/data/ALL.

Source: Bioconductor ``ALL`` 1.40.0 (Chiaretti et al. 2004), 128 samples × 12,625 probes, RMA log2.
Run: python scripts/make_all_example.py ../shared/data/ALL
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ALL")
out = Path(__file__).resolve().parents[1] / "src/linsig/data/example/ALL.h5ad"

expr = pd.read_csv(src / "ALL_expr.tsv.gz", sep="\t", index_col=0, dtype={"sample": str})
meta = pd.read_csv(src / "ALL_meta.tsv", sep="\t", index_col=0, dtype={"sample": str})
expr.index = expr.index.astype(str)
meta.index = meta.index.astype(str)
meta = meta.loc[expr.index]
obs = pd.DataFrame(index=expr.index)
obs["sex"] = meta["sex"].map({"M": "male", "F": "female"}).astype("category")
obs["BT"] = meta["BT"].astype("category")
obs["lineage"] = meta["BT"].str[0].map({"B": "B", "T": "T"}).astype("category")
obs["mol_biol"] = meta["mol.biol"].astype("category")
obs["age"] = meta["age"].astype(float)
# A single study: every sample is its own group (so group-wise CV equals sample-wise CV).
obs["sample_group"] = obs.index.astype(str)
adata = ad.AnnData(X=expr.to_numpy(dtype=np.float32), obs=obs, var=pd.DataFrame(index=expr.columns))
adata.uns["linsig"] = {
    "dataset": "ALL",
    "source": "Bioconductor ALL 1.40.0 (Chiaretti et al. 2004), HG-U95Av2, RMA log2; Artistic-2.0",
}
out.parent.mkdir(parents=True, exist_ok=True)
adata.write_h5ad(out, compression="gzip", compression_opts=9)
print(out, adata.shape, out.stat().st_size)
