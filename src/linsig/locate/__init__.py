"""``linsig locate``: which genes carry the signal left after linear removal, in what form, and
whether it adds to the linear signal. See :mod:`linsig.locate.core` and docs/locate.md."""

from linsig.locate.core import LocateConfig, LocateResult, beyond_linear, binary_tasks, gene_tests, locate
from linsig.locate.output import write_outputs

__all__ = ["LocateConfig", "LocateResult", "beyond_linear", "binary_tasks", "gene_tests", "locate", "write_outputs"]
