"""linsig: linear vs non-linear signal in gene expression classification.

Implements the method of Heil, Crawford & Greene, PLoS Comput Biol 2023 (e1010984).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``linsig.benchmark``, ``linsig.report`` and ``linsig.export_csv`` (:mod:`linsig.api`), imported
    when first used so that ``import linsig`` stays light."""
    if name in ("benchmark", "export_csv"):
        from linsig import api

        return getattr(api, name)
    if name == "report":  # the module is callable: linsig.report(run_dir) is linsig.api.report
        import linsig.report as module

        return module
    raise AttributeError(f"module 'linsig' has no attribute {name!r}")


__all__ = ["__version__", "benchmark", "export_csv", "report"]
