"""Reading text into an LSTM state and sampling from it."""

from __future__ import annotations

import torch

from .model import CharLSTM, State
from .stoprules import StopResult, make_stop_rule
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
    stop_rule: str | None = None,
    stop_language: str | None = None,
    should_stop=None,
    on_bytes=None,
) -> tuple[bytes, StopResult | None]:
    """Sample up to `length` bytes after `prime`.

    With a stop rule, sampling ends where the rule says the function ends and
    the text is cut there. `on_bytes(chunk)` receives the text as it is made
    (whole UTF-8 characters only); `should_stop()` aborts between steps.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    logits, state = prefill(model, prime)
    rule = make_stop_rule(stop_rule, prime, language=stop_language) if stop_rule else None
    out = bytearray()
    emitted = 0
    result = None
    for _ in range(length):
        if should_stop is not None and should_stop():
            break
        sym = _pick(logits.cpu(), temperature, generator)
        out.append(sym)
        if rule is not None:
            result = rule.feed(bytes([sym]))
            if result is not None:
                del out[result.keep :]
                break
        if on_bytes is not None:
            # Hold back trailing whitespace: a stop rule may still cut it away.
            ready = utf8_complete_prefix(bytes(out).rstrip())
            if len(ready) > emitted:
                on_bytes(ready[emitted:])
                emitted = len(ready)
        logits, state = model(torch.tensor([[sym]], device=device), state)
        logits = logits[0, -1].float()
    if rule is not None and result is None:
        result = (
            rule.finish()
        )  # e.g. Lua's `end` is only known to end the function when the text stops
        if result is not None:
            del out[result.keep :]
    text = utf8_complete_prefix(bytes(out))
    if on_bytes is not None and len(text) > emitted:
        on_bytes(text[emitted:])
    return text, result
