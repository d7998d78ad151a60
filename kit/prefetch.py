"""Bounded read-ahead over a thread pool: decoding overlaps computing without holding every clip."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future


def ordered(pool: Executor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """pool.map with at most `ahead` results in flight (bounded memory, same order)."""
    queue: collections.deque[Future] = collections.deque()
    it = iter(items)
    for item in it:
        queue.append(pool.submit(fn, item))
        if len(queue) >= ahead:
            break
    while queue:
        result = queue.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            queue.append(pool.submit(fn, nxt))
        yield result
