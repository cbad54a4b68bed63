"""How well the progress bar's time left predicts a finished run's end, replayed from its results.

A run's ``results.parquet`` holds each unit's search and fit seconds. This replays the run: the
units in ``linsig run``'s submission order on ``--jobs`` workers (each unit lasting its search
seconds, once per signal mode, plus its fits' seconds), and after every finished unit asks
:class:`linsig.progress.CostProgress` (with a simulated clock) for the time left, two ways:

* **before**: the bar before it learnt from the finished units: the units' estimated costs
  (:func:`linsig.estimate.unit_weights`, from the cached calibration) at tqdm's default rate, an
  exponential moving average (smoothing 0.3) over the finished units;
* **estimate only**: the same costs at the run's average rate;
* **corrected**: the bar as it is, the units left costed at their estimate times the measured /
  estimated ratio of their model's finished units.

Prints, at a tenth, a quarter, half and three quarters of the units, the end each predicts
against the replayed end.

    PYTHONPATH=src python benchmarks/bench_eta.py OUT/results.parquet --features 5000 --jobs 2
"""

from __future__ import annotations

import argparse
import heapq
import json

import numpy as np
import pandas as pd


def unit_seconds(results: pd.DataFrame) -> dict:
    """Seconds of each (model, seed, fold) unit: its fits, plus one search per signal mode."""
    out = {}
    for key, rows in results.groupby(["model", "seed", "fold"], sort=False):
        search = rows.groupby("signal")["tune_seconds"].first().fillna(0).sum()
        out[key] = float(rows["fit_seconds"].fillna(0).sum() + search)
    return out


def replay(results: pd.DataFrame, n_features: int, jobs: int, recipe: str, tuning: str):
    from linsig.estimate import Shape, unit_weights
    from linsig.evaluation import Settings, units
    from linsig.progress import CostProgress

    first = results[results["train_fraction"] == results["train_fraction"].max()].iloc[0]
    shape = Shape(int(first["n_train"] + first["n_val"]), n_features, int(first["n_classes"]))
    settings = Settings(models=tuple(dict.fromkeys(results["model"])), seeds=tuple(sorted(results["seed"].unique())),
                        n_folds=int(results["fold"].max()) + 1, fractions=tuple(sorted(results["train_fraction"].unique())),
                        signals=tuple(dict.fromkeys(results["signal"])), recipe=recipe, tuning=tuning, device="cpu")
    work = units(settings)
    weights = unit_weights([(u.model, shape) for u in work], settings)
    seconds = unit_seconds(results)
    durations = [seconds[(u.model, u.seed, u.fold)] for u in work]

    now = [0.0]
    bar = CostProgress(weights, desc="replay", disable=True, kinds=[u.model for u in work], clock=lambda: now[0])
    running: list[tuple[float, int]] = []
    position, events = 0, []
    ema_dn, ema_dt, calls, last_t, last_n = 0.0, 0.0, 0, 0.0, 0.0  # tqdm's EMA, smoothing 0.3
    while position < len(work) or running:
        while position < len(work) and len(running) < jobs:
            bar.start(position)
            heapq.heappush(running, (now[0] + durations[position], position))
            position += 1
        now[0], index = heapq.heappop(running)
        bar.advance(index)
        done = [i for i in bar._seconds]
        est_done = sum(weights[i] for i in done)
        est_left = sum(weights) - est_done
        timed = sum(s for s in bar._seconds.values() if s is not None)
        t = now[0]
        if t > last_t:
            ema_dn, ema_dt, calls = 0.3 * (est_done - last_n) + 0.7 * ema_dn, 0.3 * (t - last_t) + 0.7 * ema_dt, calls + 1
            last_t, last_n = t, est_done
        ema = t + est_left / (ema_dn / ema_dt)
        events.append((len(done), t, ema, t + t * est_left / est_done, t + t * bar.seconds_left() / timed))
    return events, sum(weights), sum(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a finished run's results.parquet")
    parser.add_argument("--features", type=int, required=True, help="the task's genes (the estimate's shape)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--recipe", default="strong")
    parser.add_argument("--tuning", default="full")
    args = parser.parse_args()

    results = pd.read_parquet(args.results)
    events, estimated, measured = replay(results, args.features, args.jobs, args.recipe, args.tuning)
    end = events[-1][1]
    print(f"{len(events)} units; estimated compute {estimated / 3600:.2f} h, replayed {measured / 3600:.2f} h "
          f"(ratio {estimated / measured:.2f}); replayed end on {args.jobs} workers {end / 60:.1f} min")
    print("| units done | at (min) | predicted end (min): before | estimate only | corrected |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for share in (0.1, 0.25, 0.5, 0.75):
        count, t, *ends = next(e for e in events if e[0] >= share * len(events))
        print(f"| {count} ({share:.0%}) | {t / 60:.1f} | " + " | ".join(f"{e / 60:.1f} ({e / end:.2f}×)" for e in ends) + " |")
    errors = np.array([[abs(np.log(e / end)) for e in ends] for _, _, *ends in events[len(events) // 10:]])
    factor = np.exp(errors.max(axis=0))
    print(f"worst factor from a tenth of the units on: before {factor[0]:.2f}×, estimate only {factor[1]:.2f}×, "
          f"corrected {factor[2]:.2f}×")
    print(json.dumps({"units": len(events), "end_s": end}))


if __name__ == "__main__":
    main()
