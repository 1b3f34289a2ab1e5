"""A memo that threads can share: each result made once, the most recently used kept.

Owned by its caller, never module state: a law comparison shares one grid
cache across its laws (``lawfit.multistart.GridCache``); the dashboard keeps its fits
and grid runs in memos that its request threads share.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """The ``size`` most recently used results, by key.

    Contract: safe to share between threads. Threads that ask for the same
    key wait for one computation of it; threads that ask for different keys
    compute at the same time. ``make`` must give the same result for the same
    key; if it raises, nothing is kept and the next request for the key makes it again.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a memo keeps at least one result, got size={size}")
        self._size = size
        self._results: OrderedDict[K, V] = OrderedDict()
        self._making: dict[K, threading.Lock] = {}  # one lock per key being made
        self._lock = threading.Lock()  # guards _results and _making, never held while making

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The result for ``key``, made by ``make()`` unless it is kept or another thread is making it."""
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._results:  # made by the thread this one waited for
                    self._results.move_to_end(key)
                    return self._results[key]
            try:
                made = make()
                with self._lock:
                    self._results[key] = made
                    while len(self._results) > self._size:
                        self._results.popitem(last=False)
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return made
