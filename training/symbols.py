"""The model's alphabet: the 256 byte values plus one document-boundary symbol.

Every checkpoint shares this alphabet, so any file is representable and a
bundled model can be fine-tuned on any repository without a vocabulary change.
"""

from __future__ import annotations

import numpy as np

BOUNDARY = 256  # marks the start of a document; never produced as text
VOCAB_SIZE = 257


def encode_array(data: bytes, boundary: bool = False) -> np.ndarray:
    """Symbols as uint16, optionally preceded by the document boundary."""
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.uint16)
    if boundary:
        arr = np.concatenate([np.array([BOUNDARY], dtype=np.uint16), arr])
    return arr


def utf8_complete_prefix(data: bytes) -> bytes:
    """The longest prefix of data that does not end inside a multi-byte character."""
    n = len(data)
    # Walk back over at most 3 continuation bytes to find the last lead byte.
    i = n - 1
    while i >= 0 and n - i <= 4 and is_continuation(data[i]):
        i -= 1
    if i < 0:
        return data if n == 0 else b""
    lead = data[i]
    if lead < 0x80:
        need = 1
    elif lead >> 5 == 0b110:
        need = 2
    elif lead >> 4 == 0b1110:
        need = 3
    elif lead >> 3 == 0b11110:
        need = 4
    else:
        need = 1  # invalid lead byte: keep it, it is a complete (bad) unit
    return data if n - i >= need else data[:i]


def is_continuation(byte: int) -> bool:
    """A UTF-8 continuation byte (10xxxxxx): never the first byte of a character."""
    return (byte & 0xC0) == 0x80
