"""`python -m charcode.training` (and `torchrun -m charcode.training`): the training CLI."""

import sys

from .cli import main
from .cpu_parallel import exit_worker, world_size

code = main()
if world_size() > 1:  # a torchrun worker
    exit_worker(code)
sys.exit(code)
