"""`python -m charcode.training` (and `torchrun -m charcode.training`): the training CLI."""

import os
import sys

from .cli import main
from .cpu_parallel import exit_worker

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a torchrun worker
    exit_worker(code)
sys.exit(code)
