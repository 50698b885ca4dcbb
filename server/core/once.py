"""Tell the user something once: the keys already told, safe from any thread."""

from __future__ import annotations

import threading
from collections.abc import Hashable


class Once:
    def __init__(self):
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        """True the first time a key is given, False ever after."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True
