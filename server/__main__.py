"""`python -m charcode.server`: the language server on stdio (``--tcp HOST:PORT`` optional)."""

import sys

from .main import serve_main

sys.exit(serve_main(sys.argv[1:]))
