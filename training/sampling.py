"""Reading text into an LSTM state and sampling from it."""

from __future__ import annotations

import torch

from .model import CharLSTM, State
from .symbols import BOUNDARY, utf8_complete_prefix


@torch.inference_mode()
def prefill(
    model: CharLSTM, data: bytes, state: State | None = None, boundary: bool = True
) -> tuple[torch.Tensor, State]:
    """Read a document start (optional boundary) and bytes; return the next-symbol logits and the state."""
    device = next(model.parameters()).device
    symbols = ([BOUNDARY] if boundary else []) + list(data)
    if not symbols:
        raise ValueError("prefill needs at least one symbol")
    x = torch.tensor([symbols], dtype=torch.long, device=device)
    logits, state = model(x, state)
    return logits[0, -1].float(), state


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    logits = logits.clone()
    logits[BOUNDARY] = float("-inf")  # text only: the boundary never appears inside a document
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def sample(
    model: CharLSTM,
    prime: bytes = b"",
    length: int = 500,
    temperature: float = 0.8,
    seed: int = 0,
) -> bytes:
    """Sample `length` bytes after `prime` (whole UTF-8 characters only).

    Whole functions, cut where they end, come from `charcode hallucinate`,
    which uses the language server's sampler (charcode.server.decode).
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    logits, state = prefill(model, prime)
    out = bytearray()
    for _ in range(length):
        sym = _pick(logits.cpu(), temperature, generator)
        out.append(sym)
        logits, state = model(torch.tensor([[sym]], device=device), state)
        logits = logits[0, -1].float()
    return utf8_complete_prefix(bytes(out))
