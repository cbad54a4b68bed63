"""The one sanitiser for text that reaches a terminal from files linsig did not write just now.

Error texts, unit names and hosts stored in a run folder (``units/*.json``, ``experiment.json``,
claims) may come from another user on a shared file system, and error messages quote file and
column names from the user's data. A terminal obeys control sequences in what it prints: ESC
``]`` (OSC: window title, clipboard writes), ESC ``P`` (DCS), the 8-bit CSI ``\\x9b``, BEL, and
bidirectional overrides that reorder what is shown. :func:`safe_text` shows every such
character as a visible escape (``\\x1b``, ``\\u202e``) instead, so the text can be read but not
obeyed; everything printed from a run folder goes through it.
"""

from __future__ import annotations

import sys
import unicodedata
import warnings


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text, keep_newlines: bool = False) -> str:
    """``text`` with every control or format character (C0, DEL, C1, bidi and other Cc/Cf code
    points) written as a visible escape; tabs become spaces, newlines too unless ``keep_newlines``."""
    out = []
    for ch in str(text):
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in "\u200d":
            out.append(_visible(ch))
        else:
            out.append(ch)
    return "".join(out)


_shown: set[str] = set()  # warnings shown by this process (reset by install_warning_display)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one ``warning:`` line on stderr, once: the user reads linsig's words,
    not a library's source line (``linsig -v`` leaves Python's own display in place)."""
    text = safe_text(str(message)).strip()
    if text in _shown:
        return
    _shown.add(text)
    print(f"warning: {text}", file=sys.stderr, flush=True)


_python_show = warnings.showwarning


def install_warning_display() -> None:
    """Show Python warnings with :func:`show_warning` (the command line, and its worker processes)."""
    _shown.clear()
    warnings.showwarning = show_warning


def restore_warning_display() -> None:
    """Python's own display of warnings, with their source (``-v``)."""
    warnings.showwarning = _python_show
