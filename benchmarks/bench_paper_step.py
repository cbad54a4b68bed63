"""The paper recipe's training step against a reference loop written as the paper's code trains.

    PYTHONPATH=src python benchmarks/bench_paper_step.py [--genes 5000] [--samples 1000] [--repeats 2]
    PYTHONPATH=src python benchmarks/bench_paper_step.py --parts   # where linsig's step spends its time

The reference loop follows greenelab/linear_signal's ``PytorchSupervised.fit``: a map-style
dataset indexed one sample at a time through ``torch.utils.data.DataLoader`` (batch 16,
shuffled), each batch ``.float().to(device)``, ``optimizer.zero_grad()``, the forward pass, a
class-weighted cross-entropy, ``backward``, ``clip_grad_norm_(parameters, 0.01)``, torch's default
``Adam`` step and ``loss.item()``, in a process as the paper's code runs it (glibc's default
allocator). linsig's is :func:`linsig.training.train` with the paper recipe's configuration (the
same arithmetic; data as one tensor, batches by ``index_select``, fused Adam, the loss summed on
the device) in a process as linsig's runners set it up (``keep_freed_memory``). Both train the
paper's networks (``nn.Dropout``), one thread, one epoch after a warm-up, each measurement in a
fresh process, the two sides alternating; samples per second, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class _Samples(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X.numpy(), y.numpy()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def reference_epoch(net, X, y, weights) -> None:
    loader = DataLoader(_Samples(X, y), batch_size=16, shuffle=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-5, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    net.train()
    total = 0.0
    for xb, yb in loader:
        xb, yb = xb.float().to("cpu"), yb.to("cpu")
        optimizer.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.01)
        optimizer.step()
        total += loss.item()


def linsig_epoch(net, X, y) -> None:  # noqa: D103
    from linsig.training import TrainConfig, train

    train(net, X, y, 2, TrainConfig(lr=1e-5, max_epochs=1, batch_size=16, clip_grad_norm=0.01))


def one(side: str, model: str, genes: int, samples: int) -> float:
    """Seconds of one epoch of ``side`` in this process (a fresh one)."""
    from linsig.models.networks import build_network
    from linsig.system import keep_freed_memory
    from linsig.training import class_weights

    if side == "linsig":
        keep_freed_memory()
    torch.set_num_threads(1)
    X = torch.rand(samples, genes)
    y = torch.arange(samples) % 2
    weights = class_weights(y, 2)
    torch.manual_seed(0)
    net = build_network(model, genes, 2, 0.5)
    epoch = (lambda X, y: reference_epoch(net, X, y, weights)) if side == "reference" else linsig_epoch.__get__(net)
    epoch(X[:64], y[:64])  # warm-up: the first steps of a shape build kernels
    start = time.perf_counter()
    epoch(X, y)
    return time.perf_counter() - start


def parts(model: str, genes: int, steps: int = 50) -> None:
    """Milliseconds per phase of linsig's paper-recipe step (batch 16, one thread), and this core's
    copy bandwidth: which phases are matrix products and which are passes over the weights."""
    from linsig.models.networks import build_network
    from linsig.system import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_network(model, genes, 2, 0.5)
    params = list(net.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-5, fused=True)  # as linsig.training.make_optimizer
    loss_fn = nn.CrossEntropyLoss(weight=torch.ones(2))
    X, y = torch.rand(512, genes), torch.arange(512) % 2
    phases = dict.fromkeys(("forward + loss", "backward", "clipping", "Adam"), 0.0)
    for step in range(steps + 10):
        idx = torch.randint(0, 512, (16,))
        xb, yb = X.index_select(0, idx), y.index_select(0, idx)
        optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = loss_fn(net(xb), yb)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        nn.utils.clip_grad_norm_(params, 0.01, foreach=True)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if step >= 10:  # the first steps build kernels
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name] += seconds / steps
    weights = sum(p.numel() for p in params) * 4
    a, b = torch.empty(weights // 4), torch.empty(weights // 4)
    b.copy_(a)
    start = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    copy = (time.perf_counter() - start) / 10
    print(f"{model}: {weights / 1e6:.0f} MB of weights; step {sum(phases.values()) * 1e3:.1f} ms = "
          + ", ".join(f"{name} {seconds * 1e3:.1f}" for name, seconds in phases.items())
          + f"; a copy of the weights {copy * 1e3:.1f} ms ({2 * weights / copy / 1e9:.0f} GB/s)", flush=True)


def main() -> None:
    import subprocess
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genes", type=int, default=5000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--models", nargs="+", default=["mlp3", "mlp5"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--parts", action="store_true", help="linsig's step by phase instead of the comparison")
    p.add_argument("--side", choices=["reference", "linsig"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.parts:
        for model in args.models:
            parts(model, args.genes)
        return
    if args.side:
        print(one(args.side, args.models[0], args.genes, args.samples))
        return
    print(f"{'model':5} {'genes':>6}  reference samples/s  linsig samples/s  ratio")
    for model in args.models:
        best = {"reference": math.inf, "linsig": math.inf}
        for _ in range(args.repeats):
            for side in ("reference", "linsig"):
                out = subprocess.run([sys.executable, __file__, "--side", side, "--models", model, "--genes",
                                      str(args.genes), "--samples", str(args.samples)],
                                     check=True, capture_output=True, text=True).stdout
                best[side] = min(best[side], float(out.split()[-1]))
        ref, lin = args.samples / best["reference"], args.samples / best["linsig"]
        print(f"{model:5} {args.genes:6d}  {ref:19.1f}  {lin:16.1f}  {lin / ref:5.2f}×", flush=True)


if __name__ == "__main__":
    main()
