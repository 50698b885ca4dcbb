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

from charcode.server.core.lstm import NumpyLSTM, single_threaded_blas
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


# ---- the C kernels (charcode.server.core._lstm)

_lstm = pytest.importorskip("charcode.server.core._lstm")
ISAS = ["generic"] + (["avx2+fma"] if _lstm.isa() == "avx2+fma" else [])


@pytest.fixture(params=ISAS)
def isa(request):
    prev = _lstm.set_isa(request.param)
    yield request.param
    _lstm.set_isa(prev)


def reference_layer(proj, w_hh_t, h, c):
    """The recurrence in float64, gates (i, f, o, g)."""
    H = len(h)
    h, c, out = h.astype(np.float64), c.astype(np.float64), []
    for p in proj.astype(np.float64):
        g = p + h @ w_hh_t
        s = 1 / (1 + np.exp(-g[: 3 * H]))
        c = s[H : 2 * H] * c + s[:H] * np.tanh(g[3 * H :])
        h = s[2 * H :] * np.tanh(c)
        out.append(h)
    return np.array(out).reshape(len(proj), H), h, c


@pytest.mark.parametrize("H", [1, 13, 64])
@pytest.mark.parametrize("T", [5, 50])  # the AVX2 kernel packs the weights from 16 positions
def test_kernel_layer_matches_float64(isa, H, T):
    rng = np.random.default_rng(H)
    proj = rng.normal(0, 2, (T, 4 * H)).astype(np.float32)
    w = rng.normal(0, 1 / np.sqrt(H), (H, 4 * H)).astype(np.float32)
    h = rng.uniform(-1, 1, H).astype(np.float32)
    c = rng.normal(0, 1, H).astype(np.float32)
    ref_out, ref_h, ref_c = reference_layer(proj, w, h, c)
    out = np.empty((T, H), np.float32)
    _lstm.layer(proj, w, h, c, out)
    assert abs(out - ref_out).max() < 2e-6
    assert abs(h - ref_h).max() < 2e-6 and abs(c - ref_c).max() < 2e-5
    before = (h.copy(), c.copy())
    _lstm.layer(proj[:0], w, h, c, out[:0])  # no positions: nothing changes
    assert (h == before[0]).all() and (c == before[1]).all()


def test_cell_layer_matches_layer(isa):
    """Cell.layer uses the Cell's packed copy of the weights; layer() packs its own from 64
    positions, or uses them as they are."""
    H, V = 40, 7
    rng = np.random.default_rng(3)
    w = [rng.normal(0, 0.2, (H, 4 * H)).astype(np.float32) for _ in range(2)]
    cell = _lstm.Cell(
        np.zeros((V, 4 * H), np.float32),
        w,
        [w[0]],
        [np.zeros(4 * H, np.float32)],
        np.zeros((H, V), np.float32),
        np.zeros(V, np.float32),
    )
    for T in (3, 100):
        proj = rng.normal(0, 1, (T, 4 * H)).astype(np.float32)
        ref_out, ref_h, ref_c = reference_layer(proj, w[1], np.zeros(H), np.zeros(H))
        for run in (
            lambda *state, proj=proj: cell.layer(1, proj, *state),
            lambda *state, proj=proj: _lstm.layer(proj, w[1], *state),
        ):
            h, c, out = (
                np.zeros(H, np.float32),
                np.zeros(H, np.float32),
                np.empty((T, H), np.float32),
            )
            run(h, c, out)
            assert abs(out - ref_out).max() < 2e-6 and abs(c - ref_c).max() < 2e-5


def test_kernel_activations_are_accurate(isa):
    """One step from h = c = 0 with no recurrent weights: c = sigmoid(i) * tanh(g), so
    saturating one of the two shows the other."""
    x = np.concatenate(
        [np.linspace(-30, 30, 6001), [0.0, 1e-30, -1e-30, 1e-8, 88.0, -88.0, 100.0, -1e4, 1e30]]
    ).astype(np.float32)
    H = len(x)
    w = np.zeros((H, 4 * H), np.float32)
    big = np.full(H, 50.0, np.float32)
    for gates, expect in [
        ((big, big, big, x), np.tanh(x.astype(np.float64))),  # c = tanh(x)
        ((x, big, big, big), 0.5 + 0.5 * np.tanh(x.astype(np.float64) / 2)),  # c = sigmoid(x)
    ]:
        h, c, out = np.zeros(H, np.float32), np.zeros(H, np.float32), np.empty((1, H), np.float32)
        _lstm.layer(np.concatenate(gates)[None], w, h, c, out)
        assert abs(c - expect).max() < 3e-7
        assert abs(h - np.tanh(c.astype(np.float64))).max() < 3e-7


def test_kernel_steps_match_numpy(model, isa):
    rt = numpy_runtime(model)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    ref = NumpyLSTM(model.config, weights, native=False)
    assert rt.native and not ref.native
    base = ref.read(ref.start, TEXT[:120])
    for rows in ([0], [0, 0, 0], [0] * 5, [0] * 6, [0] * 7, [0] * 9, [0] * 12, [0] * 17):
        state = ref.select(base, rows)
        symbols = list(TEXT[200 : 200 + len(rows)])
        want, (wh, wc) = ref.step(symbols, state)
        got, (gh, gc) = rt.step(symbols, state)
        assert abs(got - want).max() < 1e-5
        np.testing.assert_allclose(gh, wh, rtol=0, atol=1e-6)
        np.testing.assert_allclose(gc, wc, rtol=2e-6, atol=1e-6)
        _, (gh, gc) = rt._advance(symbols, state)
        assert abs(gh - wh).max() < 1e-6
    # a state that is a view of a batch, not a contiguous array
    view = []
    for a in base:
        spaced = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), np.float32)
        spaced[..., ::2] = a
        view.append(spaced[..., ::2])
    assert not view[0].flags.c_contiguous
    assert abs(rt.step([65], view)[0] - ref.step([65], view)[0]).max() < 1e-5


def test_kernel_rejects_bad_arguments():
    H, T = 8, 3
    f32 = np.float32
    proj, w = np.zeros((T, 4 * H), f32), np.zeros((H, 4 * H), f32)
    h, c, out = np.zeros(H, f32), np.zeros(H, f32), np.zeros((T, H), f32)
    _lstm.layer(proj, w, h, c, out)
    bad = [
        (TypeError, (proj, w, h, c)),  # too few
        (TypeError, (proj.astype(np.float64), w, h, c, out)),  # dtype
        (TypeError, (proj, w.astype(np.float16), h, c, out)),
        (TypeError, (proj, w, [0.0] * H, c, out)),  # not a buffer
        (TypeError, (proj, w, h, c, None)),
        (ValueError, (proj, w, h, c, np.zeros((T + 1, H), f32))),  # shapes
        (ValueError, (proj[:, :-1], w, h, c, out)),
        (ValueError, (proj, w[:-1], h, c, out)),
        (ValueError, (proj, w, h, np.zeros(H + 1, f32), out)),
        (ValueError, (proj, w, h[None], c, out)),
        (ValueError, (np.zeros((T, 8 * H), f32)[:, ::2], w, h, c, out)),  # not contiguous
        (ValueError, (proj, w, np.zeros(H, f32), c, np.zeros((T, H), f32)[::-1])),
        (ValueError, (proj, w, h, c, np.broadcast_to(out, out.shape))),  # read-only
        (ValueError, (proj, w, out[0], c, out)),  # h inside out
        (ValueError, (proj, w, h, h, out)),
    ]
    for error, args in bad:
        with pytest.raises(error):
            _lstm.layer(*args)

    L, V, B = 2, 5, 3
    weights = dict(
        table0=np.zeros((V, 4 * H), f32),
        w_hh_t=[w, w],
        w_ih_t=[w],
        bias=[np.zeros(4 * H, f32)],
        head_w_t=np.zeros((H, V), f32),
        head_b=np.zeros(V, f32),
    )
    cell = _lstm.Cell(**weights)
    assert (cell.layers, cell.hidden, cell.vocab) == (L, H, V)
    with pytest.raises(RuntimeError):
        cell.__init__(**weights)
    for change, error in [
        (dict(w_hh_t=[w, w[:-1]]), ValueError),
        (dict(w_ih_t=[]), ValueError),
        (dict(w_hh_t=[]), ValueError),
        (dict(bias=[np.zeros(4 * H + 1, f32)]), ValueError),
        (dict(head_b=np.zeros(V, np.float64)), TypeError),
        (dict(table0=np.zeros((V, 4 * H + 2), f32)), ValueError),
        (dict(w_hh_t=5), TypeError),
    ]:
        with pytest.raises(error):
            _lstm.Cell(**{**weights, **change})
    state = np.zeros((L, B, H), f32)

    def step_args(**kw):
        a = dict(
            symbols=[1, 2, 3],
            h=state,
            c=state,
            h_out=np.empty_like(state),
            c_out=np.empty_like(state),
            logits=np.empty((B, V), f32),
        )
        a.update(kw)
        return list(a.values())

    cell.step(*step_args())
    cell.step(*step_args(logits=None))
    cell.step(*step_args()[:5])
    for kw, error in [
        (dict(symbols=[1, 2, V]), ValueError),
        (dict(symbols=[1, 2, -1]), ValueError),
        (dict(symbols=[1, 2]), ValueError),
        (dict(symbols=[]), ValueError),
        (dict(symbols=[1, 2, "a"]), TypeError),
        (dict(symbols=5), TypeError),
        (dict(h=np.zeros((L, B, H + 1), f32)), ValueError),
        (dict(c=np.zeros((L + 1, B, H), f32)), ValueError),
        (dict(h_out=np.zeros((L, B, H), np.float64)), TypeError),
        (dict(c_out=np.zeros((B, H), f32)), ValueError),
        (dict(logits=np.zeros((B, V + 1), f32)), ValueError),
        (dict(h_out=state), ValueError),  # written and read
    ]:
        with pytest.raises(error):
            cell.step(*step_args(**kw))
    with pytest.raises(TypeError):
        cell.step([1, 2, 3])
    cell.layer(1, proj, h, c, out)
    for args, error in [
        ((2, proj, h, c, out), ValueError),  # no such layer
        ((-1, proj, h, c, out), ValueError),
        (("0", proj, h, c, out), TypeError),
        ((0, proj, h, c), TypeError),
        ((0, proj[:, :-1], h, c, out), ValueError),
        ((0, proj, h, c, out[:-1]), ValueError),
        ((0, proj, h, c, out.astype(np.float64)), TypeError),
        ((0, proj, w[0, :H], c, out), ValueError),  # h inside the Cell's weights
    ]:
        with pytest.raises(error):
            cell.layer(*args)
    with pytest.raises(RuntimeError):
        _lstm.Cell.__new__(_lstm.Cell).step(*step_args())
    with pytest.raises(ValueError):
        _lstm.set_isa("sse9")


def test_runtime_works_without_the_extension():
    code = (
        "import sys; sys.modules['charcode.server.core._lstm'] = None\n"
        "import numpy as np\n"
        "from charcode.server.core.lstm import NumpyLSTM\n"
        "from charcode.training.model_config import ModelConfig\n"
        "cfg = ModelConfig.named('tiny'); rng = np.random.default_rng(0)\n"
        "E, H, L, V = cfg.embedding, cfg.hidden, cfg.layers, cfg.vocab\n"
        "w = {'embed.weight': rng.normal(size=(V, E)), 'head.weight': rng.normal(size=(V, H)),\n"
        "     'head.bias': rng.normal(size=V)}\n"
        "for k in range(L):\n"
        "    w[f'lstm.weight_ih_l{k}'] = rng.normal(size=(4 * H, E if k == 0 else H))\n"
        "    w[f'lstm.weight_hh_l{k}'] = rng.normal(size=(4 * H, H))\n"
        "    w[f'lstm.bias_ih_l{k}'] = w[f'lstm.bias_hh_l{k}'] = rng.normal(size=4 * H)\n"
        "rt = NumpyLSTM(cfg, w)\n"
        "assert not rt.native\n"
        "s = rt.read(rt.start, b'def f(x):\\n    return x')\n"
        "logits, s = rt.step([65, 66], rt.select(s, [0, 0]))\n"
        "assert logits.shape == (2, V) and np.isfinite(logits).all()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
