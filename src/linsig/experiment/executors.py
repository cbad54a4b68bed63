"""Where units run: in this process, in a local process pool, or on a Dask cluster.

Every executor hands out :class:`concurrent.futures.Future` objects whose result is the payload of
:func:`linsig.experiment.units.compute_unit`; the driver (:mod:`linsig.experiment.driver`) claims
units, submits at most ``capacity`` at a time and writes the results itself, so workers need no
access to the output directory (only to the input data).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from concurrent.futures.process import BrokenProcessPool

from linsig.errors import LinsigInputError, RunInterrupted
from linsig.experiment.units import WorkUnit, compute_unit, set_threads
from linsig.system import exit_with_parent

#: How long to wait for a scheduler, when connecting and when reconnecting after losing it.
CONNECT_TIMEOUT = "30s"


#: A LocalCluster's scheduler: no dashboard, its HTTP server on a free port of 127.0.0.1.
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


class ExecutorLost(RunInterrupted):
    """The cluster went away mid-run: not a failure of the units in flight (they stay pending)."""


class InProcessExecutor:
    """``--jobs 1``: compute each unit right here, one at a time."""

    name = "in-process"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, unit: WorkUnit) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(compute_unit(unit, self.threads))
        return future

    def close(self, cancel: bool = False) -> None:
        pass


def _init_worker(threads: int) -> None:
    set_threads(threads)
    exit_with_parent()
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:  # as the command line shows them
        from linsig.terminal import install_warning_display

        install_warning_display()


class ProcessPoolExecutor:
    """``--jobs N``: N spawned worker processes, each caching the dataset it loaded last."""

    def __init__(self, jobs: int, threads: int | None = 1):
        self.jobs = jobs
        self.threads = threads or 1
        self.name = f"{jobs} processes"
        self._pool = self._start()

    def _start(self):
        return cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_worker, initargs=(self.threads,))

    @property
    def capacity(self) -> int:
        return self.jobs

    def submit(self, unit: WorkUnit) -> cf.Future:
        try:
            return self._pool.submit(compute_unit, unit, self.threads)
        except BrokenProcessPool:  # a worker died (e.g. out of memory): start over
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(compute_unit, unit, self.threads)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskExecutor:
    """A Dask cluster: an existing scheduler (``tcp://host:port``) or a LocalCluster of N processes.

    Units whose settings ask for ``device = "cuda"`` are submitted with ``resources={"GPU": 1}``
    (when ``tag_gpu``), so they run only on workers started with ``--resources GPU=1``.
    """

    def __init__(self, scheduler: str | None = None, local_workers: int | None = None,
                 threads: int | None = 1, tag_gpu: bool | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - the dask extra is not installed
            raise LinsigInputError("the Dask executor needs `pip install 'linsig[dask]'`") from exc
        self.threads = threads or 1
        self._cluster = None
        self.address = scheduler
        _quiet_dask_logs()
        if scheduler:
            self.name = f"dask {scheduler}"
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # OSError (refused, timed out), ValueError (not an address), …
                raise LinsigInputError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
                                       f"({type(exc).__name__}: {exc})") from exc
            self.tag_gpu = True if tag_gpu is None else tag_gpu
        else:
            self.name = f"dask LocalCluster({local_workers})"
            resources = None
            if tag_gpu is None:
                import torch

                tag_gpu = torch.cuda.is_available()
                resources = {"GPU": 1} if tag_gpu else None
            self.tag_gpu = tag_gpu
            # On this machine only (127.0.0.1), and without the dashboard: nobody asked for a web
            # server, and one on 0.0.0.0:8787 would show the run to the whole network. (The
            # scheduler's small HTTP server for health checks stays, on a free local port.)
            self._cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None, resources=resources,
                                         scheduler_kwargs=LOCAL_SCHEDULER)
            self.client = Client(self._cluster, timeout=CONNECT_TIMEOUT)
            self.address = self._cluster.scheduler_address
        self._executor = self.client.get_executor(pure=False)

    @property
    def capacity(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, unit: WorkUnit) -> cf.Future:
        extra = {"resources": {"GPU": 1}} if self.tag_gpu and str(unit.device).startswith("cuda") else {}
        return self._executor.submit(compute_unit, unit, self.threads, **extra)

    def idle_reason(self) -> str | None:
        """Why nothing can progress, when the cluster says so (no workers), else ``None``."""
        try:
            if self.client.status == "running" and not self.client.nthreads():
                return (f"the Dask scheduler {self.address} has no workers: units wait until workers connect "
                        f"(start some with `dask worker {self.address}`, or check the cluster's job queue)")
        except Exception:  # asking failed: the driver hears of a lost scheduler from the futures
            return None
        return None

    def lost(self, exc: BaseException | None = None) -> str | None:
        """A description of the lost cluster when ``exc`` (a future's error) or the client's
        state says the scheduler is gone, else ``None`` (the unit itself failed)."""
        gone = self.client.status not in ("running", "newly-created")
        if gone or isinstance(exc, (cf.CancelledError, TimeoutError)) or type(exc).__name__ == "CommClosedError":
            return f"lost the connection to the Dask scheduler {self.address}"
        return None

    def close(self, cancel: bool = False) -> None:
        try:
            self.client.close(timeout=5)  # a dead scheduler must not hold the runner up
        except Exception:
            pass
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=10)
            except Exception:
                pass


def _quiet_dask_logs() -> None:
    """Dask's own INFO lines (scheduler at…, dashboard at…, worker registered…, some 35 of them)
    are not the user's business unless they asked for log output (``-v``); warnings (a worker
    over its memory limit, restarted) still are."""
    wanted = logging.getLogger().getEffectiveLevel()
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(wanted if wanted < logging.WARNING else logging.WARNING)


def make_executor(jobs: int = 1, scheduler: str | None = None, dask_local: int | None = None,
                  threads: int | None = None):
    """The executor for the CLI options ``--jobs``, ``--scheduler``, ``--dask-local`` and ``--threads``."""
    if scheduler and dask_local:
        raise LinsigInputError("give either --scheduler or --dask-local, not both")
    if jobs > 1 and (scheduler or dask_local):
        option = "--scheduler" if scheduler else "--dask-local"
        raise LinsigInputError(f"--jobs {jobs} with {option}: --jobs starts local processes, while on a Dask "
                               f"cluster its workers do the work ({'--dask-local N sets how many' if dask_local else 'start as many as you want'}); leave out --jobs")
    if scheduler or dask_local:
        return DaskExecutor(scheduler, dask_local, threads=threads or 1)
    if jobs > 1:
        return ProcessPoolExecutor(jobs, threads=threads or 1)
    return InProcessExecutor(threads)
