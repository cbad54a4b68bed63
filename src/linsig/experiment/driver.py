"""Run an experiment: claim units, hand them to an executor, record results, combine.

The loop keeps at most ``executor.capacity`` units in flight and claims a unit only when it
submits it, so several runners on one directory share the work. Units claimed by another live
runner are left to it and watched until they finish (or their claim goes stale, then they are
taken over). A failing unit is recorded with its error and the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

from linsig.experiment.spec import Experiment
from linsig.experiment.store import UnitStore
from linsig.experiment.units import WorkUnit, expand


@dataclass
class RunReport:
    total: int = 0
    done_before: int = 0  # finished before this run started
    computed: int = 0  # done by this runner
    failed: int = 0  # failed in this run (here or in another runner)
    by_others: int = 0  # finished by another runner during this run
    results: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)  # (unit, first line of the error)

    @property
    def done(self) -> int:
        return self.done_before + self.computed + self.by_others


def _crash_payload(unit: WorkUnit, exc: BaseException) -> dict:
    now = time.time()
    return {"key": unit.key, "status": "failed", "rows": [], "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)), "started": now, "finished": now,
            "seconds": 0.0, "host": socket.gethostname(), "pid": None, "task": None}


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _lost(executor, exc: BaseException | None = None) -> str | None:
    """Whether the executor's cluster is gone (its own test), rather than a unit failing."""
    lost = getattr(executor, "lost", None)
    return lost(exc) if lost is not None else None


def _weights(units) -> list[float]:
    """Each unit's estimated relative cost (:mod:`linsig.estimate`, from a cached calibration)."""
    from linsig.estimate import unit_weights
    from linsig.experiment.units import unit_shapes

    try:
        shapes = unit_shapes(units, load_files=False)
        by_settings: dict = {}
        for i, (unit, shape) in enumerate(zip(units, shapes)):
            by_settings.setdefault(id(unit.settings), (unit.settings, []))[1].append((i, unit.model, shape))
        out = [1.0] * len(units)
        for settings, members in by_settings.values():
            for (i, _, _), w in zip(members, unit_weights([(m, s) for _, m, s in members], settings)):
                out[i] = w
        return out
    except Exception:  # an estimate is never worth failing a run for: count units instead
        return [1.0] * len(units)


def run_experiment(experiment: Experiment, out_dir, executor, progress: bool = True,
                   lock_timeout: float = 300.0, poll: float = 0.5, notify=_warn,
                   idle_notice: float = 15.0) -> RunReport:
    """Compute every unfinished unit of ``experiment`` into ``out_dir`` and rebuild the results.

    ``notify`` hears why nothing has progressed for ``idle_notice`` seconds when the executor
    can tell (a Dask scheduler without workers). When the executor's cluster is lost, the units
    in flight are released (pending, not failed: nothing is known against them), the results of
    the finished ones are combined as usual, and :class:`~linsig.executors.ExecutorLost`
    says so and how to resume.
    """
    from linsig.progress import CostProgress

    units = expand(experiment)
    store = UnitStore(out_dir, lock_timeout=lock_timeout)
    try:
        store.adopt(experiment, units)  # refuses a folder that holds another definition
        store.prepare()
    except BaseException:
        executor.close(cancel=True)
        raise
    started = time.time()
    report = RunReport(total=len(units))
    pending: deque[WorkUnit] = deque()
    for unit in units:
        if store.is_done(unit.key):
            report.done_before += 1
            store.clear_stale_lock(unit.key)
        else:
            pending.append(unit)
    inflight: dict[cf.Future, WorkUnit] = {}
    watched: list[WorkUnit] = []  # claimed by another runner

    # The bar fills by each unit's estimated cost, so its ETA weighs an mlp5 unit above a logreg one.
    position = {unit.key: i for i, unit in enumerate(units)}
    weights = _weights(units) if progress else [1.0] * len(units)
    waiting = {u.key for u in pending}
    ended: set[int] = {i for i, u in enumerate(units) if u.key not in waiting}  # done before this run
    bar = CostProgress(weights, desc=f"linsig experiment {experiment.name}", disable=not progress, file=sys.stderr,
                       kinds=[unit.model for unit in units],
                       dynamic_ncols=True)

    shown = [""]

    def status():
        # Redraw only when a count changes: a bar redrawn at every poll floods non-terminal logs
        # (SLURM output files, CI) with identical lines.
        remaining = report.total - report.done - report.failed
        postfix = f"done={report.done} failed={report.failed} remaining={remaining}"
        if postfix != shown[0]:
            shown[0] = postfix
            bar.detail = f"({report.failed} failed)" if report.failed else ""  # the count is the bar's own
            bar.set_done(sorted(ended))

    def failed(unit, error):
        report.failed += 1
        ended.add(position[unit.key])
        report.failures.append((unit.describe(), error.splitlines()[0] if error else ""))

    status()
    lost: str | None = None
    last_progress, told = time.time(), None
    store.start_heartbeat()
    try:
        while (pending or inflight or watched) and not lost:
            while pending and len(inflight) < executor.capacity and not lost:
                unit = pending.popleft()
                if not store.claim(unit.key):
                    watched.append(unit)
                    continue
                if store.is_done(unit.key):  # finished by another runner since we looked
                    store.release(unit.key)
                    report.by_others += 1
                    ended.add(position[unit.key])
                elif store.failed_since(unit.key, started):
                    store.release(unit.key)
                    failed(unit, (store.read_meta(unit.key) or {}).get("error", ""))
                else:
                    try:
                        inflight[executor.submit(unit)] = unit
                        bar.start(position[unit.key])
                    except Exception as exc:
                        lost = _lost(executor, exc)
                        store.release(unit.key)
                        if not lost:
                            raise
                status()
            if inflight:
                finished, _ = cf.wait(list(inflight), timeout=poll, return_when=cf.FIRST_COMPLETED)
                if finished:
                    last_progress, told = time.time(), None
                elif time.time() - last_progress > idle_notice and hasattr(executor, "idle_reason"):
                    reason = executor.idle_reason()
                    if reason and reason != told:  # once per reason, not at every poll
                        notify(reason)
                        told = reason
                for future in finished:
                    unit = inflight.pop(future)
                    try:
                        payload = future.result()
                    except Exception as exc:  # the worker process itself died, or the cluster is gone
                        gone = _lost(executor, exc)
                        if gone:  # not the unit's fault: leave it pending for the next run
                            lost = gone
                            store.release(unit.key)
                            continue
                        payload = _crash_payload(unit, exc)
                    store.record(unit, payload)
                    store.release(unit.key)
                    if payload["status"] == "done":
                        report.computed += 1
                        ended.add(position[unit.key])
                    else:
                        failed(unit, payload["error"])
                    status()
            elif watched and not pending:
                time.sleep(poll)
            still = []
            for unit in watched:
                state = store.lock_state(unit.key)
                if state == "held":
                    still.append(unit)
                elif store.is_done(unit.key):
                    report.by_others += 1
                    ended.add(position[unit.key])
                elif store.failed_since(unit.key, started):
                    failed(unit, (store.read_meta(unit.key) or {}).get("error", ""))
                else:  # released without a result, or its runner died: ours now
                    pending.append(unit)
            watched = still
            status()
    except BaseException:
        executor.close(cancel=True)
        raise
    finally:
        store.stop_heartbeat()
        store.release_all()
        bar.close()
    executor.close(cancel=bool(lost))
    path, _ = store.combine(units)  # also after a lost cluster: the finished units are results
    report.results = os.fspath(path)
    if lost:
        from linsig.executors import ExecutorLost

        remaining = report.total - report.done - report.failed
        raise ExecutorLost(
            f"{lost}; {report.done} of {report.total} units are done and in {path}, {remaining} not computed "
            f"(none of them counted as failed); run the same command again, with a reachable scheduler, to "
            f"compute them")
    return report
