"""Frame sources: lazy, validated access to the frames of a stack.

``ArrayFrames(array, axis=0)`` wraps any array-like indexable along ``axis`` (numpy, dask,
zarr, h5py, a list of 2-D arrays) whose frames are (H, W) grey or (H, W, 3) RGB. A frame is
read only when asked for, and while the caller works on frame ``i`` a background thread reads
the next ``read_ahead`` frames in the direction of travel, so slow storage (zarr on disk, dask
graphs) overlaps with compute. The whole array is never loaded.

``ModelInputFrames(images, video_size)`` holds frames that are already model-ready
(T, 3, S, S) float32 tensors (the seam used to compare with Meta's video predictor, whose
frames are PIL-bicubic resized).

Both give the tracking session ``model_input(index, direction) -> (1, 3, S, S)`` tensors.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from napari_sam2.engine import transforms as T
from napari_sam2.engine.windows import PlaneLevels


def _shape_of(array) -> tuple[int, ...] | None:
    shape = getattr(array, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


class ArrayFrames:
    """Frames of an array-like along one axis, read lazily with read-ahead.

    Args:
        array: (T, H, W) grey or (T, H, W, 3) RGB with the stack axis anywhere before the
            channel axis (e.g. (H, T, W) with ``axis=1``); or a sequence of (H, W[, 3]) arrays.
        axis: the stack axis (time or z); negative values count from the end.
        read_ahead: frames read in the background ahead of the last one read (0: off).
        levels: coarser versions of ``array`` (same layout, smaller frames), finest first,
            as napari's multiscale levels; ``plane`` reads windows from them.

    Raises:
        TypeError: ``array`` is neither array-like nor a sequence.
        ValueError: wrong number of dimensions, ``axis`` out of range or on the channel axis,
            or an empty stack.
    """

    def __init__(self, array, axis: int = 0, *, read_ahead: int = 2, levels=()) -> None:
        if isinstance(array, (str, bytes)) or not hasattr(array, "__getitem__"):
            raise TypeError(
                f"frames must be an array-like (numpy, dask, zarr) or a list of 2-D frames, "
                f"got {type(array).__name__}"
            )
        if int(read_ahead) < 0:
            raise ValueError(f"read_ahead must be >= 0, got {read_ahead}")
        self._array = array
        self.read_ahead = int(read_ahead)
        shape = _shape_of(array)
        if shape is None:  # a plain sequence of frames: the stack axis is its index
            if axis != 0:
                raise ValueError(f"a sequence of frames is indexed along axis 0, got axis={axis}")
            n = len(array)
            if n == 0:
                raise ValueError("the frame sequence is empty: pass at least one frame")
            # shape only: a NaN frame is an error when it is read, as for arrays
            first = T.check_image(np.asarray(array[0]), "frame 0", finite=False)
            self._axis = 0
            self._sequence = True
            self.num_frames = n
            self.frame_shape = (int(first.shape[0]), int(first.shape[1]))
            self.is_rgb = first.ndim == 3
        else:
            ndim = len(shape)
            rgb = ndim == 4 and shape[-1] == 3
            if ndim not in (3, 4) or (ndim == 4 and not rgb):
                raise ValueError(
                    f"frames array has shape {shape}: pass a stack (T, H, W) of grey frames or "
                    "(T, H, W, 3) of RGB frames (channels last); use axis= for the stack axis"
                )
            stack_dims = 3
            if not -ndim <= axis < ndim:
                raise ValueError(f"axis {axis} is out of range for an array of shape {shape}")
            ax = axis % ndim
            if ax >= stack_dims:
                raise ValueError(
                    f"axis {axis} is the channel axis of the RGB stack {shape}: pick the time "
                    "or z axis (0, 1 or 2)"
                )
            if shape[ax] == 0:
                raise ValueError(f"the stack is empty (shape {shape}, axis {ax} has length 0)")
            spatial = [s for i, s in enumerate(shape[:stack_dims]) if i != ax]
            if 0 in spatial:
                raise ValueError(f"frames are empty (shape {shape})")
            self._axis = ax
            self._sequence = False
            self.num_frames = int(shape[ax])
            self.frame_shape = (int(spatial[0]), int(spatial[1]))
            self.is_rgb = rgb
        self._levels = list(levels)
        for lv in self._levels:
            lshape = _shape_of(lv)
            if self._sequence or lshape is None or len(lshape) != len(_shape_of(array)) \
                    or lshape[self._axis] != self.num_frames:
                raise ValueError(f"levels must be arrays laid out as the frames array (stack "
                                 f"axis {self._axis} of {self.num_frames} frames), got shape "
                                 f"{lshape}")
        self._lock = threading.Lock()
        self._pending: dict[int, Future] = {}
        self._executor: ThreadPoolExecutor | None = None

    @property
    def axis(self) -> int:
        return self._axis

    def __len__(self) -> int:
        return self.num_frames

    # ------------------------------------------------------------------ reading
    def _check_index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an integer, got {index!r}")
        i = int(index)
        if not 0 <= i < self.num_frames:
            raise ValueError(f"frame {i} is out of range: the stack has frames 0..{self.num_frames - 1}")
        return i

    def _read_now(self, i: int) -> np.ndarray:
        if self._sequence or self._axis == 0:
            raw = self._array[i]
        else:
            raw = self._array[(slice(None),) * self._axis + (i,)]
        frame = T.check_image(np.asarray(raw), f"frame {i}")  # also rejects NaN / inf
        if frame.shape[:2] != self.frame_shape:
            raise ValueError(
                f"frame {i} has shape {frame.shape[:2]} but frame 0 has {self.frame_shape}: all "
                "frames of a stack must have the same size"
            )
        return frame

    def plane(self, index: int) -> PlaneLevels:
        """Frame ``index`` as ``windows.PlaneLevels`` (all levels): nothing is read until a
        window of it is."""
        i = self._check_index(index)
        if self._sequence:
            return PlaneLevels([self._array[i]])
        return PlaneLevels([self._array, *self._levels], index=i, axis=self._axis)

    def read(self, index: int, direction: int = 1) -> np.ndarray:
        """Frame ``index`` as an (H, W) or (H, W, 3) numpy array (validated).

        Also starts reading the next ``read_ahead`` frames in ``direction`` (+1 or -1) in the
        background.

        Raises:
            ValueError: index out of range, a frame of a different size, non-finite values.
        """
        i = self._check_index(index)
        with self._lock:
            fut = self._pending.pop(i, None)
        frame = None
        if fut is not None:
            try:
                frame = fut.result()
            except Exception:  # noqa: BLE001 - re-read in this thread to raise there
                frame = None
        if frame is None:
            frame = self._read_now(i)
        self._schedule(i, 1 if direction >= 0 else -1)
        return frame

    def _schedule(self, i: int, step: int) -> None:
        if self.read_ahead == 0:
            return
        wanted = [j for j in (i + step * k for k in range(1, self.read_ahead + 1))
                  if 0 <= j < self.num_frames]
        with self._lock:
            for j in list(self._pending):
                if j not in wanted:
                    self._pending.pop(j).cancel()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="napari-sam2-frames")
            for j in wanted:
                if j not in self._pending:
                    self._pending[j] = self._executor.submit(self._read_now, j)

    def close(self) -> None:
        """Stop the read-ahead thread (reading still works afterwards, without read-ahead)."""
        with self._lock:
            for fut in self._pending.values():
                fut.cancel()
            self._pending.clear()
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ model input
    def model_input(
        self, index: int, direction: int, *, image_size: int, device, intensity_range=None
    ) -> torch.Tensor:
        """(1, 3, S, S) normalised model input of frame ``index`` (the still-image transform)."""
        frame = self.read(index, direction)
        # mapped and resized in row blocks: no float32 copy of a large frame
        return T.preprocess_image(frame, image_size, intensity_range=intensity_range,
                                  device=device)


class ModelInputFrames:
    """Frames that are already model-ready: (T, 3, S, S) float32, normalised.

    Args:
        images: numpy array or tensor (T, 3, S, S).
        video_size: (H, W) of the original frames, the resolution of the returned logits.
    """

    is_rgb = True

    def __init__(self, images, video_size) -> None:
        t = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if t.ndim != 4 or t.shape[1] != 3 or t.shape[2] != t.shape[3]:
            raise ValueError(
                f"images must be model-ready frames (T, 3, S, S), got shape {tuple(t.shape)}"
            )
        if t.shape[0] == 0:
            raise ValueError("images is empty: pass at least one frame")
        if not torch.is_floating_point(t):
            raise TypeError(f"images must be float32 normalised frames, got {t.dtype}")
        try:
            h, w = (int(v) for v in video_size)
        except (TypeError, ValueError):
            raise ValueError(f"video_size must be (H, W), got {video_size!r}") from None
        if h <= 0 or w <= 0:
            raise ValueError(f"video_size must be positive (H, W), got {video_size!r}")
        self._images = t.float()
        self.num_frames = int(t.shape[0])
        self.frame_shape = (h, w)
        self.image_size = int(t.shape[-1])

    def __len__(self) -> int:
        return self.num_frames

    def model_input(self, index: int, direction: int, *, image_size: int, device,
                    intensity_range=None) -> torch.Tensor:
        if image_size != self.image_size:
            raise ValueError(
                f"the model takes {image_size}x{image_size} inputs but images are "
                f"{self.image_size}x{self.image_size}"
            )
        x = self._images[index:index + 1]
        if not torch.isfinite(x).all():
            raise ValueError(f"frame {index} contains NaN or infinite values")
        return x.to(device)

    def close(self) -> None:
        pass
