"""Where units run: in this process, in a local process pool, or on a Dask cluster.

Every executor hands out :class:`concurrent.futures.Future` objects whose result is the payload of
:func:`linsig.experiment.units.compute_unit`; the driver (:mod:`linsig.experiment.driver`) claims
units, submits at most ``capacity`` at a time and writes the results itself, so workers need no
access to the output directory (only to the input data).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from concurrent.futures.process import BrokenProcessPool

from linsig.errors import LinsigInputError
from linsig.experiment.units import WorkUnit, compute_unit, set_threads
from linsig.system import exit_with_parent


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

    def submit(self, unit: WorkUnit) -> cf.Future:
        extra = {"resources": {"GPU": 1}} if self.tag_gpu and str(unit.device).startswith("cuda") else {}
        return self._executor.submit(compute_unit, unit, self.threads, **extra)

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(jobs: int = 1, scheduler: str | None = None, dask_local: int | None = None,
                  threads: int | None = None):
    """The executor for the CLI options ``--jobs``, ``--scheduler``, ``--dask-local`` and ``--threads``."""
    if scheduler and dask_local:
        raise LinsigInputError("give either --scheduler or --dask-local, not both")
    if scheduler or dask_local:
        return DaskExecutor(scheduler, dask_local, threads=threads or 1)
    if jobs > 1:
        return ProcessPoolExecutor(jobs, threads=threads or 1)
    return InProcessExecutor(threads)
