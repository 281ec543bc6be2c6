"""A thread-safe least-recently-used cache of per-frame image features, bounded in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameFeatures:
    """Image-encoder output of one frame.

    Attributes:
        vision: (1, C, h, w) raw stride-16 features (no ``no_mem_embed``).
        high_res: ((1, C/8, 4h, 4w), (1, C/4, 2h, 2w)) after conv_s0 / conv_s1, or ().
        pos: (1, C, h, w) sine position encoding of ``vision``: the same tensor for every
            frame, so it is not counted in ``nbytes``.
    """

    vision: torch.Tensor
    high_res: tuple[torch.Tensor, ...]
    pos: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in (self.vision, *self.high_res)))


class FeatureCache:
    """LRU cache ``key -> FrameFeatures`` holding at most ``max_bytes``.

    ``get_or_compute`` is safe to call from several threads: a frame being computed by one
    thread is waited for, not computed twice.
    """

    def __init__(self, max_bytes: int) -> None:
        if int(max_bytes) < 0:
            raise ValueError(f"feature_cache_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, threading.Event] = {}
        self._generation = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return key in self._items

    def keys(self) -> list[int]:
        with self._lock:
            return list(self._items)

    def get(self, key: int) -> FrameFeatures | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: int, item: FrameFeatures, generation: int | None = None, *,
            evict: bool = True) -> None:
        """Store ``item``, dropping the least recently used entries to make room; with
        ``evict=False`` only when it fits beside what is already cached (nothing is dropped).

        Items computed before the last ``clear`` (an older ``generation``) are not stored.
        """
        size = item.nbytes
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if size > self.max_bytes:
                return
            if not evict and key not in self._items and self._bytes + size > self.max_bytes:
                return
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            while self._items and self._bytes + size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes
            self._items[key] = item
            self._bytes += size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self._generation += 1

    def get_or_compute(self, key: int, compute: Callable[[], FrameFeatures], *,
                       store: bool = True, evict: bool = True) -> FrameFeatures:
        """The cached item, or ``compute()`` (stored when ``store``; with ``evict=False`` only
        if it fits without dropping anything, see :meth:`put`)."""
        while True:
            with self._lock:
                item = self._items.get(key)
                if item is not None:
                    self._items.move_to_end(key)
                    return item
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    generation = self._generation
                    break
            event.wait()
            if not store:  # the other thread may not keep it; compute our own if needed
                with self._lock:
                    item = self._items.get(key)
                if item is not None:
                    return item
                return compute()
        try:
            item = compute()
            if store:
                self.put(key, item, generation, evict=evict)
            return item
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()
