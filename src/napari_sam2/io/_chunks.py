"""Reading big label arrays by their chunks, never whole (issue 19; zarr and dask only).

* ``is_lazy(data)``: a zarr or dask array (written block by block, not converted to numpy).
* ``stored_regions(zarr_array, lead)``: the regions of the chunks a zarr array has in its
  store: the only places a fill-0 labels array can hold a label.
* ``lazy_labels(labels)``: ``check_labels_array``'s checks without reading the data.
* ``memory_labels(shape, chunks)`` / ``copy_stored_chunks(array)``: a zarr array in memory
  that stores only the chunks written (empty, or a copy of another zarr array's stored chunks).
"""

from __future__ import annotations

import numpy as np


def is_zarr(data) -> bool:
    return type(data).__module__.split(".")[0] == "zarr" and hasattr(data, "chunks")


def is_lazy(data) -> bool:
    """A zarr or dask array: read block by block, never converted whole."""
    return is_zarr(data) or type(data).__module__.split(".")[0] == "dask"


def _stored_keys(data) -> list[str]:
    """The keys (relative to the array) of the chunks a zarr array has in its store."""
    from zarr.core.sync import sync

    store = data.store
    prefix = data.path + "/" if data.path else ""

    async def collect():
        return [k async for k in store.list_prefix(prefix + "c/")]

    return [k[len(prefix):] for k in sync(collect())]


def stored_regions(data, lead: tuple | None = None) -> list[tuple]:
    """The regions (index tuples: ints for the non-spatial axes chunked by 1, slices else) of
    the stored chunks of a zarr array, in the store's order; ``lead``: only those of the plane
    with these non-spatial indices."""
    out = []
    chunks, shape = data.chunks, data.shape
    for key in _stored_keys(data):
        coords = [int(v) for v in key.split("/")[1:]]
        if len(coords) != len(shape):
            continue
        if lead is not None and tuple(c * n for c, n in zip(coords[:-2], chunks[:-2])) != lead:
            continue
        out.append(tuple(c * n if n == 1 and i < len(shape) - 2 else
                         slice(c * n, min((c + 1) * n, s))
                         for i, (c, n, s) in enumerate(zip(coords, chunks, shape))))
    return out


def lazy_labels(labels):
    """``labels`` itself when it is a zarr or dask integer array of 2 to 5 dims (checked as
    ``check_labels_array`` checks, without reading it); None for anything else."""
    if not is_lazy(labels):
        return None
    dtype, shape = np.dtype(labels.dtype), tuple(labels.shape)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {dtype}: cast them first "
                         "(e.g. labels.astype(np.int32))")
    if not 2 <= len(shape) <= 5 or 0 in shape:
        raise ValueError(f"labels must have 2 to 5 non-empty dimensions (..., y, x), got "
                         f"shape {shape}")
    return labels


def memory_labels(shape, chunks, dtype=np.int32):
    """An all-zero zarr array in memory that stores only the chunks written (an all-zero
    chunk is not stored), zstd-compressed."""
    import zarr
    from zarr.storage import MemoryStore

    return zarr.create_array(store=MemoryStore(), shape=tuple(int(s) for s in shape),
                             chunks=tuple(int(c) for c in chunks), dtype=dtype, fill_value=0,
                             config={"write_empty_chunks": False})


def copy_stored_chunks(array):
    """A ``memory_labels`` copy of a zarr array: only the chunks its store holds are read."""
    out = memory_labels(array.shape, array.chunks, array.dtype)
    for region in stored_regions(array):
        out[region] = array[region]
    return out
