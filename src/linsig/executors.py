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
import multiprocessing
from concurrent.futures.process import BrokenProcessPool

from linsig.errors import LinsigInputError
from linsig.system import exit_with_parent, set_threads

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
        if scheduler:
            self.name = f"dask {scheduler}"
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise LinsigInputError(f"--scheduler {scheduler}: cannot connect ({exc})") from exc
            self.tag_gpu = True if tag_gpu is None else tag_gpu
        else:
            self.name = f"dask LocalCluster({local_workers})"
            resources = None
            if tag_gpu is None:
                import torch

                tag_gpu = torch.cuda.is_available()
                resources = {"GPU": 1} if tag_gpu else None
            self.tag_gpu = tag_gpu
            self._cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, resources=resources)
            self.client = Client(self._cluster)
        self._executor = self.client.get_executor(pure=False)

    @property
    def capacity(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, job) -> cf.Future:
        extra = {"resources": {"GPU": 1}} if self.tag_gpu and _wants_gpu(job) else {}
        return self._executor.submit(_call, job, self.threads, **extra)

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(jobs: int = 1, scheduler: str | None = None, dask_local: int | None = None,
                  threads: int | None = None, context: tuple = ()):
    """The executor for the CLI options ``--jobs``, ``--scheduler``, ``--dask-local`` and ``--threads``."""
    if scheduler and dask_local:
        raise LinsigInputError("give either --scheduler or --dask-local, not both")
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
