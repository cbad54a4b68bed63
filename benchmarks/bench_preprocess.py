"""Benchmark the GTEx build path (GCT.gz parse → per-gene stats → top-5000 → chunked .h5ad).

    .venv/bin/python benchmarks/bench_preprocess.py                    # 56,200 genes × 2,000 samples
    .venv/bin/python benchmarks/bench_preprocess.py --samples 500 2000 # two sizes: fit memory slope

For each size it writes a synthetic GTEx-format GCT.gz (TPM-like values printed the way GTEx
prints them, ~30 % zeros) and matching annotation files, then runs
:func:`linsig.data.gtex.build_gtex_from_files` in a *fresh subprocess* and reports its wall time
and peak RSS (``ru_maxrss`` of that child), and extrapolates both to the real 17,382 samples: time
linearly in the number of samples (every step is linear in samples × genes); memory from a
linear fit when two sizes are given (it should barely grow: the writer's peak is one gene block
plus one row block, not samples × genes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_SAMPLES = 17_382


def write_synthetic_gtex(folder: Path, n_samples: int, n_genes: int, seed: int = 0) -> dict[str, Path]:
    """GTEx-format TPM GCT.gz + SampleAttributes + SubjectPhenotypes for ``n_samples``."""
    rng = np.random.default_rng(seed)
    donors = [f"GTEX-{i:05X}" for i in range(max(1, n_samples // 18))]
    tissues = ["Blood", "Brain", "Skin", "Esophagus", "Blood Vessel", "Lung", "Muscle"]
    samples = [f"{donors[i % len(donors)]}-{i:04d}-SM-{i:05X}" for i in range(n_samples)]
    # A vocabulary of printed TPM values: formatting 10^8 floats one by one would dominate.
    vocab = np.array([b"0"] + [f"{v:.4g}".encode() for v in rng.lognormal(1.0, 2.0, 20_000)], dtype=object)
    tpm = folder / "GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz"
    header = b"\t".join([b"Name", b"Description"] + [s.encode() for s in samples])
    # compresslevel=1: generation speed only; gunzip speed hardly depends on the level.
    with gzip.open(tpm, "wb", compresslevel=1) as gz:
        gz.write(b"#1.2\n%d\t%d\n" % (n_genes, n_samples) + header + b"\n")
        for g in range(n_genes):
            idx = rng.integers(1, vocab.size, n_samples)
            idx[rng.random(n_samples) < 0.3] = 0
            gz.write(b"ENSG%011d.%d\tGENE%d\t" % (g, g % 9 + 1, g) + b"\t".join(vocab[idx]) + b"\n")
    attrs = folder / "GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt"
    attrs.write_text("SAMPID\tSMTS\tSMTSD\n" + "".join(f"{s}\t{tissues[i % 7]}\t{tissues[i % 7]} - x\n"
                                                        for i, s in enumerate(samples)))
    subj = folder / "GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt"
    subj.write_text("SUBJID\tSEX\tAGE\tDTHHRDY\n" + "".join(f"{d}\t{i % 2 + 1}\t50-59\t0\n"
                                                             for i, d in enumerate(donors)))
    return {"tpm": tpm, "samples": attrs, "subjects": subj}


def _child(args: argparse.Namespace) -> None:
    """Run inside the measured subprocess: the real build, then print a JSON line."""
    from linsig.data.gtex import build_gtex_from_files

    t0 = time.perf_counter()
    build_gtex_from_files(args.out, args.tpm, args.attrs, args.subj, n_top_genes=args.n_top, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def measure(folder: Path, n_samples: int, n_genes: int, n_top: int) -> dict:
    t0 = time.perf_counter()
    files = write_synthetic_gtex(folder, n_samples, n_genes)
    gen_s = time.perf_counter() - t0
    out = folder / "gtex.h5ad"
    cmd = [sys.executable, __file__, "--child", "--out", str(out), "--tpm", str(files["tpm"]),
           "--attrs", str(files["samples"]), "--subj", str(files["subjects"]), "--n-top", str(n_top)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"build failed ({status}): {stdout}")
    inner = json.loads(stdout.strip().splitlines()[-1])
    return {
        "samples": n_samples, "genes": n_genes, "n_top": n_top,
        "gct_gz_mb": files["tpm"].stat().st_size / 1e6, "h5ad_mb": out.stat().st_size / 1e6,
        "generate_s": gen_s, "build_s": inner["seconds"], "process_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, nargs="+", default=[2000])
    p.add_argument("--genes", type=int, default=56_200)
    p.add_argument("--n-top", type=int, default=5000)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder (deleted)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--out", "--tpm", "--attrs", "--subj"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args)

    results = []
    for n in args.samples:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            r = measure(Path(tmp), n, args.genes, args.n_top)
        results.append(r)
        print(f"{n:>6} samples × {args.genes} genes: GCT.gz {r['gct_gz_mb']:.0f} MB → h5ad {r['h5ad_mb']:.0f} MB; "
              f"build {r['build_s']:.1f} s (process {r['process_s']:.1f} s, CPU {r['cpu_user_s']:.1f}+"
              f"{r['cpu_sys_s']:.1f} s), peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)

    big = max(results, key=lambda r: r["samples"])
    scale = FULL_SAMPLES / big["samples"]
    t_full = big["build_s"] * scale
    if len(results) >= 2:
        xs = np.array([r["samples"] for r in results], float)
        ys = np.array([r["peak_rss_mb"] for r in results])
        slope, icpt = np.polyfit(xs, ys, 1)
        rss_full = icpt + slope * FULL_SAMPLES
        rss_note = f"linear fit {icpt:.0f} MB + {slope * 1000:.1f} MB per 1000 samples"
    else:
        rss_full, rss_note = float("nan"), "give two --samples values to fit memory"
    print(f"extrapolated to {FULL_SAMPLES} samples: build ≈ {t_full / 60:.1f} min; peak RSS ≈ {rss_full:.0f} MB "
          f"({rss_note})")
    print(json.dumps({"results": results, "extrapolated": {"samples": FULL_SAMPLES, "build_s": t_full,
                                                           "peak_rss_mb": rss_full}}))


if __name__ == "__main__":
    main()
