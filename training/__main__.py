"""`python -m charcode.training` (and `torchrun -m charcode.training`): the training CLI."""

import sys

from .cli import main

sys.exit(main())
