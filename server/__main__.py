"""`python -m charcode.server`: the language server on stdio (``--tcp HOST:PORT`` optional)."""

import os
import sys

# NumPy's OpenBLAS runs the per-keystroke steps; threads only add overhead at these sizes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .serve import serve_main  # noqa: E402

sys.exit(serve_main(sys.argv[1:]))
