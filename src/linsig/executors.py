"""Where work runs: in this process, in a local process pool, or on a Dask cluster.

One protocol, three engines. A *job* is a picklable callable, ``job(threads)``, with an optional
``device`` attribute; ``submit(job)`` returns a :class:`concurrent.futures.Future` of its result,
``capacity`` is how many jobs may usefully be in flight and ``close(cancel)`` ends the engine.
``context`` is data every job needs that should travel to each worker once (``linsig run``'s
in-memory tasks): jobs read it with :func:`worker_context`. The experiment driver
(:mod:`linsig.experiment.driver`: an experiment's units, results written by the driver, so workers
need no access to the output directory) and :func:`linsig.evaluation.evaluate` (a grid on tasks
in memory, through :func:`run_jobs`) both submit through it.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from concurrent.futures.process import BrokenProcessPool

from linsig.errors import LinsigInputError, RunInterrupted
from linsig.system import exit_with_parent, set_threads

#: How long to wait for a scheduler, when connecting and when reconnecting after losing it.
CONNECT_TIMEOUT = "30s"


#: A LocalCluster's scheduler: no dashboard, its HTTP server on a free port of 127.0.0.1.
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


class ExecutorLost(RunInterrupted):
    """The cluster went away mid-run: not a failure of the units in flight (they stay pending)."""

_CONTEXT: tuple = ()


def worker_context() -> tuple:
    """The ``context`` of the engine running this call (``()`` when it was given none)."""
    return _CONTEXT


class InProcessExecutor:
    """``--jobs 1``: run each call right here, one at a time."""

    name = "in-process"

    def __init__(self, threads: int | None = None, context: tuple = ()):
        global _CONTEXT
        self.threads = threads
        self._previous, _CONTEXT = _CONTEXT, tuple(context)

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, job) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(job(self.threads))
        except Exception as exc:  # as a pool would: the caller decides what a failure means
            future.set_exception(exc)
        return future

    def close(self, cancel: bool = False) -> None:
        global _CONTEXT
        _CONTEXT = self._previous


def _call(job, threads):
    return job(threads)


def _wants_gpu(job) -> bool:
    return str(getattr(job, "device", "")).startswith("cuda")


def _init_worker(threads: int, context: tuple) -> None:
    global _CONTEXT
    _CONTEXT = context
    set_threads(threads)
    exit_with_parent()
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:  # as the command line shows them
        from linsig.terminal import install_warning_display

        install_warning_display()
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:  # as the command line shows them
        from linsig.terminal import install_warning_display

        install_warning_display()


class ProcessPoolExecutor:
    """``--jobs N``: N spawned worker processes (each caching the dataset it loaded last)."""

    def __init__(self, jobs: int, threads: int | None = 1, context: tuple = ()):
        self.jobs = jobs
        self.threads = threads or 1
        self.context = tuple(context)
        self.name = f"{jobs} processes"
        self._pool = self._start()

    def _start(self):
        return cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_worker, initargs=(self.threads, self.context))

    @property
    def capacity(self) -> int:
        return self.jobs

    def submit(self, job) -> cf.Future:
        try:
            return self._pool.submit(_call, job, self.threads)
        except BrokenProcessPool:  # a worker died (e.g. out of memory): start over
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(_call, job, self.threads)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskExecutor:
    """A Dask cluster: an existing scheduler (``tcp://host:port``) or a LocalCluster of N processes.

    Jobs whose ``device`` is ``cuda`` (units whose settings ask for it) are submitted with
    ``resources={"GPU": 1}`` (when ``tag_gpu``), so they run only on workers started with
    ``--resources GPU=1``.
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

    def submit(self, job) -> cf.Future:
        extra = {"resources": {"GPU": 1}} if self.tag_gpu and _wants_gpu(job) else {}
        return self._executor.submit(_call, job, self.threads, **extra)

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
                  threads: int | None = None, context: tuple = ()):
    """The executor for the CLI options ``--jobs``, ``--scheduler``, ``--dask-local`` and ``--threads``."""
    if scheduler and dask_local:
        raise LinsigInputError("give either --scheduler or --dask-local, not both")
    if jobs > 1 and (scheduler or dask_local):
        option = "--scheduler" if scheduler else "--dask-local"
        raise LinsigInputError(f"--jobs {jobs} with {option}: --jobs starts local processes, while on a Dask "
                               f"cluster its workers do the work ({'--dask-local N sets how many' if dask_local else 'start as many as you want'}); leave out --jobs")
    if scheduler or dask_local:
        if context:  # pragma: no cover - linsig run's in-memory grid runs locally
            raise LinsigInputError("in-memory work runs in processes on this machine (--jobs), not on Dask")
        return DaskExecutor(scheduler, dask_local, threads=threads or 1)
    if jobs > 1:
        return ProcessPoolExecutor(jobs, threads=threads or 1, context=context)
    return InProcessExecutor(threads, context=context)


def run_jobs(executor, jobs, on_done=None, before=None) -> list:
    """Every job of ``jobs`` through ``executor``, at most ``capacity`` in flight; then close it.

    Returns the results in the order of ``jobs``; ``on_done(i, result)`` is called as each
    finishes and ``before(i)`` before each is submitted. The first failure cancels the rest and
    is raised, as it would be in one process.
    """
    jobs = list(jobs)
    results: list = [None] * len(jobs)
    inflight: dict = {}
    position = 0
    try:
        while position < len(jobs) or inflight:
            while position < len(jobs) and len(inflight) < executor.capacity:
                if before is not None:
                    before(position)
                inflight[executor.submit(jobs[position])] = position
                position += 1
            finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            for future in finished:
                index = inflight.pop(future)
                results[index] = future.result()  # raises the job's own exception
                if on_done is not None:
                    on_done(index, results[index])
    except BaseException:
        executor.close(cancel=True)
        raise
    executor.close()
    return results
