"""The LSTM recurrence of the NumPy runtime (server/core/lstm.py): the NumPy code, the C
kernels of the _lstm extension (AVX2+FMA and generic builds) and torch's nn.LSTM (oneDNN),
timed interleaved on the bundled Python model.

    .venv/bin/python bench/lstm_kernels.py [--model PATH] [--rounds N] [--bytes N]

For each round, each implementation runs once in turn, so a load that comes and goes
(shared cores) hits them alike; the table gives the median and the best round.

- bulk read: the state after reading --bytes bytes (default 2,048, what the first
  request in a large file reads); torch is ``model.lstm(model.embed(x))``, batch 1,
  one thread.
- step b1 / b5: one ``step`` (every layer and the head) for 1 or 5 batch rows, the cost
  of a keystroke or of a ghost-text character, and of one beam step.
- log_probs: characters per second of ``log_probs`` (``charcode eval``) on the same bytes;
  torch is forward + log_softmax.

It also prints the largest difference of the kernels' log-probabilities from the NumPy
code's. torch is imported only here, never by the runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "training" / "models" / "python.safetensors"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sample_text(n: int) -> bytes:
    """n bytes of real Python source: the standard library's argparse.py, from its 4,000th
    byte."""
    data = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_bytes()
    return (data[4000:] * (1 + n // max(1, len(data) - 4000)))[:n]


def timed(fn) -> tuple[float, float]:
    """Wall-clock and this thread's CPU seconds for one call of fn."""
    t, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - t, time.thread_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--bytes", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=200, help="steps timed per round")
    args = ap.parse_args()

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch

    from charcode.server.core import lstm as core_lstm
    from charcode.server.core.lstm import NumpyLSTM, single_threaded_blas
    from charcode.training.checkpoint import load_arrays
    from charcode.training.model import CharLSTM
    from charcode.training.model_config import ModelConfig
    from charcode.training.symbols import BOUNDARY

    single_threaded_blas()
    torch.set_num_threads(1)
    _lstm = core_lstm._lstm
    if _lstm is None:
        sys.exit("the _lstm extension is not built: pip install -e . first")

    meta, weights = load_arrays(args.model)
    config = ModelConfig.from_dict(meta["model"])
    rt_np = NumpyLSTM(config, weights, native=False)
    rt_c = NumpyLSTM(config, weights)
    model = CharLSTM(config).eval()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})

    data = sample_text(args.bytes)
    symbols = list(data)
    x = torch.tensor([symbols])
    isas = ["avx2+fma", "generic"] if _lstm.isa() == "avx2+fma" else [_lstm.isa()]

    def with_isa(isa, fn):
        def run():
            prev = _lstm.set_isa(isa)
            try:
                return fn()
            finally:
                _lstm.set_isa(prev)

        return run

    def torch_read():
        with torch.inference_mode():
            model.lstm(model.embed(x))

    def torch_log_probs():
        with torch.inference_mode():
            logits, _ = model(torch.tensor([[BOUNDARY, *symbols]]))
            torch.log_softmax(logits[0], dim=-1)

    state1 = rt_np.read(rt_np.start, data[:300])
    state5 = rt_np.select(state1, [0] * 5)

    def steps(rt, state, batch):
        def run():
            s = state
            for t in range(args.steps):
                _, s = rt.step(symbols[t : t + batch] if batch > 1 else [symbols[t]], s)

        return run

    impls: dict[str, dict[str, object]] = {"numpy": {}, **{f"C {i}": {} for i in isas}}
    impls["numpy"] = {
        "read": lambda: rt_np.read(rt_np.start, data),
        "b1": steps(rt_np, state1, 1),
        "b5": steps(rt_np, state5, 5),
        "lp": lambda: rt_np.log_probs(rt_np.start, symbols),
    }
    for i in isas:
        impls[f"C {i}"] = {
            "read": with_isa(i, lambda: rt_c.read(rt_c.start, data)),
            "b1": with_isa(i, steps(rt_c, state1, 1)),
            "b5": with_isa(i, steps(rt_c, state5, 5)),
            "lp": with_isa(i, lambda: rt_c.log_probs(rt_c.start, symbols)),
        }
    impls["torch"] = {"read": torch_read, "lp": torch_log_probs}

    # agreement with the NumPy code, and a warm-up of every path
    ref, _ = rt_np.log_probs(rt_np.start, symbols)
    errors = {}
    for i in isas:
        got, _ = with_isa(i, lambda: rt_c.log_probs(rt_c.start, symbols))()
        errors[i] = float(abs(got - ref).max())
    for fns in impls.values():
        for fn in fns.values():
            fn()

    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, fns in impls.items():
            for what, fn in fns.items():
                per = args.steps if what in ("b1", "b5") else 1
                w, c = timed(fn)
                wall.setdefault((name, what), []).append(w / per)
                cpu.setdefault((name, what), []).append(c / per)

    load = os.getloadavg()
    print(f"model {args.model.name}: {config.layers}x{config.hidden}, vocab {config.vocab}")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; kernel ISA {_lstm.isa()}")
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (other processes share it)")
    print(
        f"torch {torch.__version__}, 1 thread, oneDNN (mkldnn) available: "
        f"{torch.backends.mkldnn.is_available()}; NumPy {np.__version__}"
    )
    print(f"{args.rounds} interleaved rounds; median (best round)")
    cols = [
        ("read", f"bulk read {args.bytes} B", 1e3, "ms"),
        ("b1", "step b1", 1e6, "µs"),
        ("b5", "step b5", 1e6, "µs"),
        ("lp", "log_probs", None, "kchar/s"),
    ]
    isa_c = f"C {isas[0]}"
    pairs = [("numpy", isa_c), ("torch", isa_c), ("numpy", "torch")]
    if len(isas) > 1:
        pairs.append((f"C {isas[1]}", isa_c))
    for label, times in [("wall-clock time", wall), ("CPU time of the thread", cpu)]:
        print(f"\n{label}")
        print(
            f"{'':12}" + "".join(f"{title + ' (' + unit + ')':>24}" for _, title, _, unit in cols)
        )
        med = {k: statistics.median(v) for k, v in times.items()}
        for name in impls:
            row = f"{name:12}"
            for what, _, scale, _ in cols:
                v = times.get((name, what))
                if v is None:
                    row += f"{'-':>24}"
                elif scale is None:
                    n = len(symbols) / 1e3
                    row += f"{n / med[name, what]:>14.1f} ({n / min(v):7.1f})"
                else:
                    row += f"{med[name, what] * scale:>14.3f} ({min(v) * scale:7.3f})"
            print(row)
        print("ratios of medians (time; > 1: the first is slower)")
        for a, b in pairs:
            parts = [
                f"{title} {med[a, what] / med[b, what]:.2f}"
                for what, title, _, _ in cols
                if (a, what) in med and (b, what) in med
            ]
            print(f"  {a} / {b}: " + ", ".join(parts))
    print(
        "\nlargest |log-probability difference| from the NumPy code: "
        + ", ".join(f"C {i} {e:.1e}" for i, e in errors.items())
    )


if __name__ == "__main__":
    main()
