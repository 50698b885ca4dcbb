"""Data-parallel training across CPU cores: one process per core, one thread each.

On a few cores, one process whose oneDNN LSTM splits each small matrix
product over all threads keeps the cores waiting on each other. Processes
with one thread each, averaging gradients over gloo (PyTorch's DDP), train
the same model on the same global batch and use the cores fully; see
bench/train_throughput.py for the figures.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable

# Set in the workers this module starts, so they know the launcher already set up.
WORKER_ENV = "CHARCODE_CPU_WORKER"


def world_size() -> int:
    """Processes in this training run, from torchrun's (or our launcher's) environment."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choose_processes(requested: int | None, batch_size: int) -> int:
    """The largest process count <= requested (default: cores) that divides the batch."""
    n = requested if requested is not None else available_cores()
    n = max(1, min(n, batch_size))
    while batch_size % n:
        n -= 1
    return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: a kill -9 of the launcher also ends the workers (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _worker(rank: int, world: int, port: int, argv: list[str], entry: Callable) -> None:
    _die_with_parent()
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
        **{WORKER_ENV: "1"},
    )  # fmt: skip
    import torch

    torch.set_num_threads(1)
    exit_worker(entry(argv))


def exit_worker(code: int) -> None:
    """Ends a training worker (ours or torchrun's) without interpreter finalization.

    The checkpoint is saved and the process group destroyed by now. Tearing down
    gloo's and DDP's C++ objects at finalization aborts a worker now and then
    ("terminate called without an active exception", about 1 run in 12 on this
    2-core machine) after a successful run, which made the whole command fail.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def launch(argv: list[str], processes: int, entry: Callable[[list[str]], int]) -> int:
    """Run `entry(argv)` (the training command line's main) in `processes` workers, with
    torchrun's environment set in each; returns the exit code. entry must be a module-level
    function: each worker is a fresh interpreter that imports it by name."""
    import torch.multiprocessing as mp

    try:
        mp.spawn(_worker, args=(processes, _free_port(), argv, entry), nprocs=processes, join=True)
    except mp.ProcessExitedException as e:
        return e.exit_code if e.exit_code and e.exit_code > 0 else 1
    return 0
