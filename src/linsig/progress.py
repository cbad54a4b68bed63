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
    """A progress bar over units that fills, and predicts the time left, by each unit's estimated cost.

    Units of one grid differ in cost by orders of magnitude (an ``mlp5`` unit can take a thousand
    ``logreg`` units' time), so counting units made the ETA wrong by as much. The bar advances by
    the unit's weight (:func:`linsig.estimate.unit_weights`), so tqdm's own rate and remaining time
    are cost-weighted; the postfix says how many units are done (``12/300 units``) and what runs.
    """

    def __init__(self, weights, desc: str, disable: bool = False, file=None, **kwargs):
        self.weights = [float(w) for w in weights]
        self.units, self.done, self.detail = len(self.weights), 0, ""
        file = sys.stderr if file is None else file
        # tqdm's usual layout with the unit count where it shows n/total (which here would be seconds)
        bar = ("{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]" if _is_terminal(file)
               else "{desc}: {percentage:3.0f}% [{elapsed}<{remaining}{postfix}]")
        total = sum(self.weights) or None
        self.bar = progress_bar(total=total, desc=desc, disable=disable, file=file, bar_format=bar,
                                postfix=f"0/{self.units} units", **kwargs)

    def _show(self, refresh: bool = True) -> None:
        text = f"{self.done}/{self.units} units" + (f" {self.detail}" if self.detail else "")
        self.bar.set_postfix_str(text, refresh=refresh)

    def set_postfix_str(self, detail: str = "", refresh: bool = True) -> None:
        self.detail = detail
        self._show(refresh)

    def advance(self, index: int) -> None:
        """Unit ``index`` (of ``weights``) is finished."""
        self.done += 1
        self._show(refresh=False)
        self.bar.update(self.weights[index])

    def set_done(self, indices) -> None:
        """Exactly the units ``indices`` are finished (a runner that also sees other runners' units)."""
        indices = list(indices)
        cost = sum(self.weights[i] for i in indices)
        self.done = len(indices)
        self._show(refresh=False)
        self.bar.update(cost - self.bar.n)
        self.bar.refresh()

    def update(self, n: int = 1) -> None:  # tqdm's interface: n more units of average weight
        self.done += n
        average = sum(self.weights) / max(self.units, 1)
        self._show(refresh=False)
        self.bar.update(average * n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
