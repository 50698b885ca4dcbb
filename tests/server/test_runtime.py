"""The NumPy inference paths (core/lstm.py) agree with CharLSTM.forward.

Tolerance: next-byte log-probabilities within 1e-4 nats (all paths are fp32;
what differs is the order of float operations), checked over 600 bytes of
text, for a random-initialised small (2x256) and medium (3x512) model and a
trained tiny one.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from lsp_helpers import TRAIN_TEXT, numpy_runtime, tiny_model

from charcode.server.core.lstm import single_threaded_blas
from charcode.training.symbols import BOUNDARY

TOLERANCE = 1e-4
TEXT = TRAIN_TEXT.encode()[:600]


@pytest.fixture(scope="module", params=["tiny-trained", "small", "medium"])
def model(request):
    if request.param == "tiny-trained":
        return tiny_model(seed=0, steps=40)
    torch.manual_seed(1)
    return tiny_model(seed=1, size=request.param)


def reference_logprobs(model, data: bytes) -> torch.Tensor:
    with torch.inference_mode():
        logits, _ = model(torch.tensor([[BOUNDARY, *data]]))
    return torch.log_softmax(logits[0], dim=-1)  # row t predicts data[t]


def test_bulk_read_matches_forward(model):
    rt = numpy_runtime(model)
    ref = reference_logprobs(model, TEXT)
    state = rt.start
    for cut in (0, 1, 255, 256, 599, 600):
        state = rt.read(rt.start, TEXT[:cut])
        got = torch.log_softmax(torch.from_numpy(rt.logits(state)[0]), dim=-1)
        assert (got - ref[cut]).abs().max().item() < TOLERANCE


def test_chunked_reading_matches_one_read(model):
    rt = numpy_runtime(model)
    state = rt.start
    for i in range(0, len(TEXT), 97):
        state = rt.read(state, TEXT[i : i + 97])
    whole = rt.read(rt.start, TEXT)
    assert abs(state[0] - whole[0]).max() < 1e-5


def test_single_steps_match_forward(model):
    rt = numpy_runtime(model)
    ref = reference_logprobs(model, TEXT)
    state = rt.start
    for t, b in enumerate(TEXT[:300]):
        logits, state = rt.step([b], state)
        got = torch.log_softmax(torch.from_numpy(logits[0]), dim=-1)
        assert (got - ref[t + 1]).abs().max().item() < TOLERANCE


def test_batched_steps_match_single_steps(model):
    rt = numpy_runtime(model)
    states = [rt.read(rt.start, TEXT[:n]) for n in (10, 50, 90)]
    batch = (np.concatenate([s[0] for s in states], 1), np.concatenate([s[1] for s in states], 1))
    logits, _ = rt.step([65, 66, 67], batch)
    for row, (s, b) in enumerate(zip(states, (65, 66, 67), strict=True)):
        one, _ = rt.step([b], s)
        assert abs(logits[row] - one[0]).max() < 1e-5


def test_log_probs_match_forward(model):
    """The bulk scorer (charcode eval) gives the distribution before every byte and after the last."""
    rt = numpy_runtime(model)
    ref = reference_logprobs(model, TEXT).numpy()
    got, final = rt.log_probs(rt.start, list(TEXT))
    assert got.shape == (len(TEXT) + 1, rt.vocab)
    assert abs(got - ref).max() < TOLERANCE
    assert abs(final[0] - rt.read(rt.start, TEXT)[0]).max() < 1e-5


def test_the_runtime_imports_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import charcode.server.core.lstm, charcode.server.core.model_store\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_paths_match_forward():
    model = tiny_model(seed=2, size="small")
    ref = reference_logprobs(model, TEXT)
    from charcode.server.core.lstm_cuda import CudaLSTM

    rt = CudaLSTM(model.config, {k: v.numpy() for k, v in model.state_dict().items()})
    state = rt.read(rt.start, TEXT[:200])
    got = torch.log_softmax(torch.from_numpy(rt.logits(state)[0]), dim=-1)
    assert (got - ref[200]).abs().max().item() < 1e-3
    logits, state = rt.step([TEXT[200]], state)
    got = torch.log_softmax(torch.from_numpy(logits[0]), dim=-1)
    assert (got - ref[201]).abs().max().item() < 1e-3
    logits, _ = rt.step([65, 66], rt.select(state, [0, 0]))
    assert logits.shape == (2, 257)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="NumPy's Linux wheels bundle OpenBLAS"
)
def test_numpy_blas_is_made_single_threaded():
    assert single_threaded_blas()
