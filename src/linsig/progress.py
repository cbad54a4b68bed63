"""Progress bars that suit where they are written: a redrawn bar on a terminal, plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file (SLURM output, CI logs,
``linsig demo 2> log``) that leaves hundreds of fragments on one line. :func:`progress_bar` is
the one constructor linsig's bars use: on a terminal (or in a notebook) it is tqdm's bar; when
the stream is not a terminal, each update becomes at most one complete line, written when
:data:`LINE_INTERVAL` seconds have passed since the last line or a twentieth of the total has
been done since, and once more at the end.
"""

from __future__ import annotations

import math
import sys
import time

from tqdm.autonotebook import tqdm as _auto_tqdm  # tqdm's notebook bar inside Jupyter, else the standard one
from tqdm.std import tqdm as _std_tqdm

LINE_INTERVAL = 10.0  # seconds between plain progress lines at most (while work finishes)
LINE_STEPS = 20  # ... or a line per 1/LINE_STEPS of the total


class LineProgress(_std_tqdm):
    """tqdm writing whole lines (``desc: 40/200 units [01:10<04:40, ...]``) instead of redraws."""

    def __init__(self, *args, **kwargs):
        self._line_t = -math.inf
        self._line_n = None
        if kwargs.get("total"):  # no bar drawing in a log line
            kwargs.setdefault("bar_format", "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} "
                                            "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        kwargs["leave"] = False  # close() writes the last line itself, without tqdm's clearing
        kwargs["dynamic_ncols"] = False
        super().__init__(*args, **kwargs)

    def _step(self) -> float:
        return math.ceil(self.total / LINE_STEPS) if self.total else math.inf

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing the line: nothing was drawn to clear
            return False
        now = time.monotonic()
        first = self._line_n is None
        due = now - self._line_t >= LINE_INTERVAL or (not first and self.n - self._line_n >= self._step())
        if first or (due and self.n != self._line_n):
            self._emit(msg, now)
        return True

    def _emit(self, msg=None, now=None):
        line = (self.__str__() if msg is None else str(msg)).strip()
        self.fp.write(line + "\n")
        self.fp.flush()
        self._line_t = time.monotonic() if now is None else now
        self._line_n = self.n

    def close(self):
        if not getattr(self, "disable", True) and self._line_n != self.n:
            with self._lock:
                self._emit()
        super().close()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def progress_bar(*args, file=None, **kwargs):
    """A tqdm-compatible progress bar on ``file`` (default stderr): redrawn on a terminal, lines elsewhere."""
    file = sys.stderr if file is None else file
    if _is_terminal(file):
        return _std_tqdm(*args, file=file, **kwargs)
    if _auto_tqdm is not _std_tqdm and file is sys.stderr:  # a notebook: its widget
        return _auto_tqdm(*args, **kwargs)
    return LineProgress(*args, file=file, **kwargs)


class CostProgress:
    """A progress bar over units that fills, and predicts the time left, by each unit's cost.

    Units of one grid differ in cost by orders of magnitude (an ``mlp5`` unit can take a thousand
    ``logreg`` units' time), so counting units made the ETA wrong by as much: the bar weighs each
    unit by its estimated cost (:func:`linsig.estimate.unit_weights`). The estimate of a family can
    still be off by 2× or more on data it was not measured on (a network that learns the data in 10
    epochs where the cost model assumed 70), so the bar also learns as units finish. A unit is
    timed from :meth:`start` to its end; the units left are costed at their estimate times the
    measured / estimated ratio of the finished units of their kind (``kinds``: the model family),
    or of all finished units for a kind not seen yet. The bar's total is then the seconds done plus
    the corrected seconds left, and tqdm's time left is that over the run's average rate
    (``smoothing=0``: whole units finish seldom, and a short window's rate jumps with each one).
    Units that finished without being timed here (done by an earlier or another runner) count as
    done at their corrected estimate, but not in the rate. The postfix says how many units are done
    (``12/300 units``) and what runs.
    """

    def __init__(self, weights, desc: str, disable: bool = False, file=None, kinds=None, clock=time.monotonic,
                 **kwargs):
        self.weights = [float(w) for w in weights]
        self.kinds = [None] * len(self.weights) if kinds is None else list(kinds)
        if len(self.kinds) != len(self.weights):
            raise ValueError(f"{len(self.kinds)} kinds for {len(self.weights)} units")
        self.units, self.done, self.detail = len(self.weights), 0, ""
        self._clock = clock
        self._started: dict[int, float] = {}
        self._seconds: dict[int, float | None] = {}  # finished units: seconds measured here, or None
        self._extra = 0.0  # update(): units of average estimated weight, untimed
        file = sys.stderr if file is None else file
        # tqdm's usual layout with the unit count where it shows n/total (which here would be seconds)
        bar = ("{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]" if _is_terminal(file)
               else "{desc}: {percentage:3.0f}% [{elapsed}<{remaining}{postfix}]")
        total = sum(self.weights) or None
        kwargs.setdefault("smoothing", 0)
        self.bar = progress_bar(total=total, desc=desc, disable=disable, file=file, bar_format=bar,
                                postfix=f"0/{self.units} units", **kwargs)

    def _show(self, refresh: bool = True) -> None:
        text = f"{self.done}/{self.units} units" + (f" {self.detail}" if self.detail else "")
        self.bar.set_postfix_str(text, refresh=refresh)

    def set_postfix_str(self, detail: str = "", refresh: bool = True) -> None:
        self.detail = detail
        self._show(refresh)

    def start(self, index: int) -> None:
        """Unit ``index`` starts now (its time, measured to :meth:`advance`, corrects the estimate)."""
        self._started[index] = self._clock()

    def ratios(self) -> dict:
        """Measured / estimated seconds of the units timed so far, per kind (``None``: all of them)."""
        sums: dict = {}
        for i, seconds in self._seconds.items():
            if seconds is not None and self.weights[i] > 0:
                measured, estimated = sums.get(self.kinds[i], (0.0, 0.0))
                sums[self.kinds[i]] = (measured + seconds, estimated + self.weights[i])
        out = {kind: m / e for kind, (m, e) in sums.items() if m > 0}
        measured, estimated = sum(m for m, _ in sums.values()), sum(e for _, e in sums.values())
        out[None] = measured / estimated if measured > 0 and estimated > 0 else 1.0
        return out

    def seconds_left(self, ratio: dict | None = None) -> float:
        """The estimated cost of the units not finished, corrected by :meth:`ratios` (or ``ratio``)."""
        ratio = self.ratios() if ratio is None else ratio
        return sum(w * ratio.get(k, ratio[None]) for i, (w, k) in enumerate(zip(self.weights, self.kinds))
                   if i not in self._seconds)

    def _finish(self, index: int) -> None:
        if index in self._seconds:
            return
        began = self._started.pop(index, None)
        self._seconds[index] = None if began is None else max(self._clock() - began, 0.0)

    def _redraw(self) -> None:
        ratio = self.ratios()
        timed = sum(s for s in self._seconds.values() if s is not None)
        untimed = self._extra + sum(self.weights[i] * ratio.get(self.kinds[i], ratio[None])
                                    for i, s in self._seconds.items() if s is None)
        done = timed + untimed
        self.bar.total = (done + self.seconds_left(ratio)) or None
        self.bar.initial = untimed  # tqdm's average rate is (n - initial) / elapsed: this runner's own work
        self._show(refresh=False)
        self.bar.update(done - self.bar.n)
        self.bar.refresh()

    def advance(self, index: int) -> None:
        """Unit ``index`` is finished."""
        if index not in self._seconds:
            self.done += 1
            self._finish(index)
        self._redraw()

    def set_done(self, indices) -> None:
        """Exactly the units ``indices`` are finished (a runner that also sees other runners' units)."""
        indices = set(indices)
        for index in indices:
            self._finish(index)
        for index in [i for i in self._seconds if i not in indices]:  # no longer counted as finished
            del self._seconds[index]
        self.done = len(indices)
        self._redraw()

    def update(self, n: int = 1) -> None:  # tqdm's interface: n more units of average weight
        self.done += n
        self._extra += n * sum(self.weights) / max(self.units, 1)
        self._redraw()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
