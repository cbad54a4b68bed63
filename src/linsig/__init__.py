"""linsig: linear vs non-linear signal in gene expression classification.

Implements the method of Heil, Crawford & Greene, PLoS Comput Biol 2023 (e1010984).
"""

__version__ = "0.1.0"
