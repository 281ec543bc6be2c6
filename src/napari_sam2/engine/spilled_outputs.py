"""Tracked outputs kept under a RAM bound: the least recently used go to a temporary directory.

A session keeps every object's tracked (non-conditioning) ``FrameOutput`` on every frame it
visited, because a later correction or re-propagation may read any of them (8 KiB per object
and frame for ``sam2_demo``, 128 KiB for the 1024-pixel models). ``SpilledOutputs`` is the
mapping frame -> ``FrameOutput`` used for ``ObjectTrack.non_cond``; every mapping of a session
shares one ``OutputSpill``, which holds a byte budget and an LRU order over all of them. When
the outputs in RAM exceed the budget, the least recently used are written to one small file
each (the raw bytes of ``low_res``, ``obj_ptr`` and ``score``) and read back, bit for bit, when
anything reads them; the memory features of a spilled output are dropped (they are recomputed
exactly from the logits, as after a memory eviction).

The budget counts ``low_res`` + ``obj_ptr`` + ``score``; memory features are bounded separately
by the session's ``memory_window``. At least ``keep_per_object`` outputs per object stay in
RAM whatever the budget (the session uses ``kept_outputs.lookback``, the frames one propagation
step reads): a budget smaller than what a step reads would otherwise re-read every output, and
recompute every memory, at every step. The directory is made on the first spill and removed by
``OutputSpill.close`` or when the spill is garbage-collected; a mapping's files go when the
mapping does. Callers hold the session lock; the spill also has its own lock.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import torch

from napari_sam2.engine.object_track import FrameOutput

__all__ = ["DEFAULT_OUTPUTS_RAM_BYTES", "OutputSpill", "SpilledOutputs", "check_budget"]

DEFAULT_OUTPUTS_RAM_BYTES = 512 << 20
_FIELDS = ("low_res", "obj_ptr", "score")


def check_budget(value) -> int | None:
    """``outputs_ram_bytes`` as a non-negative int or None (unbounded); else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"outputs_ram_bytes must be a non-negative integer or None "
                         f"(unbounded), got {value!r}")
    return int(value)


def _kept_bytes(out: FrameOutput) -> int:
    """Bytes of what a spill writes (``low_res``, ``obj_ptr``, ``score``)."""
    return int(sum(t.numel() * t.element_size() for t in (out.low_res, out.obj_ptr, out.score)))


@dataclass(frozen=True)
class _OnDisk:
    """Where and how one spilled output was written: the path, per tensor (dtype, shape), the
    device to read it back to and the fields that are not tensors."""

    path: str
    layout: tuple
    device: torch.device
    from_prompt: bool
    window: object
    nbytes: int


def _write(path: str, out: FrameOutput) -> _OnDisk:
    layout, chunks = [], []
    for name in _FIELDS:
        t = getattr(out, name).detach().contiguous()
        layout.append((t.dtype, tuple(t.shape)))
        chunks.append(t.cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(chunks))
    return _OnDisk(path, tuple(layout), out.low_res.device, out.from_prompt, out.window,
                   _kept_bytes(out))


def _read(disk: _OnDisk) -> FrameOutput:
    with open(disk.path, "rb") as f:
        data = bytearray(f.read())
    if len(data) != disk.nbytes:
        raise OSError(f"spilled output {disk.path} has {len(data)} bytes, expected "
                      f"{disk.nbytes}: the session's temporary directory was changed")
    raw = torch.frombuffer(data, dtype=torch.uint8)
    tensors, at = [], 0
    for dtype, shape in disk.layout:
        n = torch.empty((), dtype=dtype).element_size()
        for s in shape:
            n *= s
        tensors.append(raw[at:at + n].view(dtype).reshape(shape).to(disk.device))
        at += n
    return FrameOutput(*tensors, from_prompt=disk.from_prompt, window=disk.window)


class OutputSpill:
    """The RAM budget, LRU order and temporary directory shared by a session's outputs.

    Args:
        ram_bytes: bytes of outputs kept in RAM (None: unbounded, nothing is ever written).
        keep_per_object: outputs per mapping (object) that stay in RAM over the budget: the
            bound is max(``ram_bytes``, about objects x ``keep_per_object`` outputs).
    """

    def __init__(self, ram_bytes: int | None = DEFAULT_OUTPUTS_RAM_BYTES, *,
                 keep_per_object: int = 0) -> None:
        self.ram_bytes = check_budget(ram_bytes)
        self.keep_per_object = int(keep_per_object)
        self.lock = threading.RLock()
        self._lru: OrderedDict[tuple[int, int], int] = OrderedDict()  # (uid, frame) -> bytes
        self._owners: weakref.WeakValueDictionary[int, SpilledOutputs] = (
            weakref.WeakValueDictionary())
        self._ids = itertools.count()
        self._dir: str | None = None
        self._cleanup: weakref.finalize | None = None
        self.ram = 0  # bytes in RAM
        self.spilled = 0  # bytes on disk
        self.reads = 0  # outputs read back from disk

    @property
    def directory(self) -> str | None:
        """The temporary directory, or None before the first spill / after ``close``."""
        return self._dir

    def set_budget(self, ram_bytes: int | None) -> None:
        """Change the bound; outputs over a smaller one are spilled now."""
        ram_bytes = check_budget(ram_bytes)
        with self.lock:
            self.ram_bytes = ram_bytes
            self._shrink()

    def new_outputs(self) -> SpilledOutputs:
        """An empty mapping frame -> ``FrameOutput`` under this budget."""
        return SpilledOutputs(self)

    def close(self) -> None:
        """Remove the directory and forget every mapping (call after dropping them all)."""
        with self.lock:
            for owner in list(self._owners.values()):
                owner._detach()
            self._lru.clear()
            self._owners.clear()
            self.ram = self.spilled = 0
            if self._cleanup is not None:
                self._cleanup()
                self._dir = self._cleanup = None

    # ------------------------------------------------------------------ used by the mappings
    def _register(self, owner: SpilledOutputs) -> int:
        uid = next(self._ids)
        self._owners[uid] = owner
        return uid

    def _path(self, uid: int, frame: int) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="napari-sam2-outputs-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        return os.path.join(self._dir, f"{uid}-{frame}.bin")

    def _add(self, uid: int, frame: int, nbytes: int) -> None:
        """A resident output (new or read back) is the most recently used; spill others."""
        key = (uid, frame)
        self.ram += nbytes - self._lru.pop(key, 0)
        self._lru[key] = nbytes
        self._shrink()

    def _shrink(self) -> None:
        """Spill least recently used outputs to fit the bound (never the most recent one, nor
        the last ``keep_per_object`` x objects)."""
        if self.ram_bytes is None:
            return
        floor = max(1, self.keep_per_object * len(self._owners))
        while self.ram > self.ram_bytes and len(self._lru) > floor:
            (ouid, oframe), n = self._lru.popitem(last=False)
            self.ram -= n
            owner = self._owners.get(ouid)
            if owner is not None:
                self.spilled += n
                owner._spill(oframe)

    def _touch(self, uid: int, frame: int) -> None:
        self._lru.move_to_end((uid, frame))

    def _discard(self, uid: int, frame: int) -> None:
        self.ram -= self._lru.pop((uid, frame), 0)

    def _forget(self, uid: int, ram: dict, disk: dict) -> None:
        """A mapping is gone: forget its resident outputs and remove its files."""
        with self.lock:
            for f in ram:
                self._discard(uid, f)
            for d in disk.values():
                self.spilled -= d.nbytes
                _unlink(d.path)
            ram.clear()
            disk.clear()


def _unlink(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class SpilledOutputs(MutableMapping):
    """frame -> ``FrameOutput``, in RAM or spilled to ``spill``'s directory (see the module).

    Reading a spilled output reads it back (without its memory features) and makes it the
    most recently used. Without a spill it is a plain dict (``ObjectTrack``'s default).
    """

    def __init__(self, spill: OutputSpill | None = None) -> None:
        self._spill_to = spill
        self._ram: dict[int, FrameOutput] = {}
        self._disk: dict[int, _OnDisk] = {}
        self._order: dict[int, None] = {}  # insertion order of every frame, as a dict's
        if spill is not None:
            self._uid = spill._register(self)
            weakref.finalize(self, spill._forget, self._uid, self._ram, self._disk)

    def _lock(self):
        return self._spill_to.lock if self._spill_to is not None else _NO_LOCK

    def __getitem__(self, frame: int) -> FrameOutput:
        with self._lock():
            out = self._ram.get(frame)
            if out is not None:
                if self._spill_to is not None:
                    self._spill_to._touch(self._uid, frame)
                return out
            disk = self._disk.pop(frame)  # KeyError: not here
            out = _read(disk)
            self._spill_to.reads += 1
            _unlink(disk.path)
            self._spill_to.spilled -= disk.nbytes
            self._ram[frame] = out
            self._spill_to._add(self._uid, frame, disk.nbytes)
            return out

    def __setitem__(self, frame: int, out: FrameOutput) -> None:
        with self._lock():
            self._drop_disk(frame)
            self._ram[frame] = out
            self._order.setdefault(frame, None)
            if self._spill_to is not None:
                self._spill_to._add(self._uid, frame, _kept_bytes(out))

    def __delitem__(self, frame: int) -> None:
        with self._lock():
            if frame not in self._order:
                raise KeyError(frame)
            del self._order[frame]
            if self._ram.pop(frame, None) is not None and self._spill_to is not None:
                self._spill_to._discard(self._uid, frame)
            self._drop_disk(frame)

    def __contains__(self, frame) -> bool:
        return frame in self._order

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def resident_items(self) -> list[tuple[int, FrameOutput]]:
        """(frame, output) of the outputs in RAM (reading nothing back, changing no order)."""
        with self._lock():
            return list(self._ram.items())

    @property
    def spilled_frames(self) -> list[int]:
        """Frames whose output is on disk now, sorted."""
        with self._lock():
            return sorted(self._disk)

    # ------------------------------------------------------------------ used by the spill
    def _drop_disk(self, frame: int) -> None:
        disk = self._disk.pop(frame, None)
        if disk is not None:
            self._spill_to.spilled -= disk.nbytes
            _unlink(disk.path)

    def _spill(self, frame: int) -> None:
        out = self._ram.pop(frame)
        self._disk[frame] = _write(self._spill_to._path(self._uid, frame), out)

    def _detach(self) -> None:
        """The spill closed: every output is forgotten (the session was reset)."""
        self._disk.clear()
        self._ram.clear()
        self._order.clear()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()
