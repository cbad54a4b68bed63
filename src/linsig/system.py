"""What the machine offers this process, and how this process uses it."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading

_HEAP_KEPT: bool | None = None
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Memory one unit's process may need besides its copies of the data: the paper's mlp5 at 5,000
#: genes with AdamW's state, a search's candidates and their predictions, with room to spare (an
#: mlp3 and an mlp5 fit in one process peaked at ~1 GB, docs/performance.md).
JOB_MEMORY = 2 * 1024**3
#: Copies of the task's matrix a unit holds at once (the worker's own, the imputed fold, a subset
#: or its corrected version).
DATA_COPIES = 3


def available_memory() -> int | None:
    """Bytes of memory new processes may use: Linux's MemAvailable, within a cgroup's limit (a
    container, a SLURM job); None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            found += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:")]
    except (OSError, ValueError):
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            found.append(int(limit) - int(open("/sys/fs/cgroup/memory.current").read().strip()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else None


def default_jobs(threads: int = 1, data_bytes: int = 0) -> int:
    """Unit processes a grid runs in when ``--jobs`` is not given: ``$LINSIG_JOBS`` if set, else
    every core at ``threads`` threads each, no more than the available memory holds (one
    :data:`JOB_MEMORY` and :data:`DATA_COPIES` of the ``data_bytes`` matrix each). Results are the
    same with any number of processes."""
    given = os.environ.get("LINSIG_JOBS", "").strip()
    if given:
        try:
            return max(1, int(given))
        except ValueError:
            from linsig.errors import LinsigInputError

            raise LinsigInputError(f"LINSIG_JOBS={given!r} is not a whole number of processes") from None
    jobs = max(1, available_cores() // max(1, int(threads)))
    memory = available_memory()
    if memory is not None:
        jobs = min(jobs, max(1, memory // (JOB_MEMORY + DATA_COPIES * int(data_bytes))))
    return int(jobs)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_with_parent() -> None:
    """End this worker process as soon as the runner that started it dies, even by ``kill -9``.

    An idle pool worker waits on a queue whose other end it holds itself, so it would never
    notice: each one would stay, holding its loaded dataset (~0.5 GB). The parent's sentinel is
    a pipe that becomes readable when the parent is gone, whatever killed it.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="linsig-parent-watch", daemon=True).start()


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of giving it back to the OS.

    Each training step frees and reallocates the gradients: 50 MB for the first layer of an MLP
    on 5,000 genes. glibc serves blocks that large with ``mmap`` and unmaps them on ``free``, so
    every step faults the pages in afresh; that took a third of an ``mlp3`` step on CPU
    (benchmarks/bench_training.py ``--heap``). With ``mmap`` off and trimming only above 2 GiB, the
    freed blocks are reused. Peak memory is unchanged; the process keeps its peak until it exits.

    Called by linsig's own runners (:func:`linsig.evaluation.run_unit`) for their process only.
    Linux with glibc only; ``LINSIG_KEEP_FREED_MEMORY=0`` turns it off. Returns whether it is on.
    """
    global _HEAP_KEPT
    if _HEAP_KEPT is None:
        _HEAP_KEPT = False
        if sys.platform.startswith("linux") and os.environ.get("LINSIG_KEEP_FREED_MEMORY", "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _HEAP_KEPT = (libc.mallopt(_M_MMAP_MAX, 0) == 1
                              and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1)
            except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
                pass
    return _HEAP_KEPT


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads for this process (unchanged when ``threads`` is None or already set)."""
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
