"""``python -m linsig``: the ``linsig`` command, for environments where the script is not on PATH
(a notebook's kernel, a cluster job with only the interpreter's path)."""

from linsig.cli import main

if __name__ == "__main__":
    main(prog_name="linsig")
