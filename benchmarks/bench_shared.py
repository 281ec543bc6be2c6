"""Work shared across objects on one tracked frame: where the time goes, and frames/s with and
without the sharing, in the same run.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src \
        .venv/bin/python benchmarks/bench_shared.py                  # demo: 1, 3, 10, 30 objects
    ... --variant tiny --objects 1 3 10 --repeats 2                  # tiny at 1024, slower
    ... --part profile --variant tiny --objects 1 3                  # per-module seconds

Models: ``demo`` = the shipped ``sam2_demo`` (256 px); ``tiny`` = ``sam2.1_hiera_tiny`` (1024 px)
with the official-layout deterministic weights of ``tests/reference_weights.py``.

Every object starts with a full memory bank, as in the middle of a long propagation: a click on
frame 0 (its conditioning frame) and tracked outputs on frames 1-6 (copies of the click's
output, so memory attention reads 7 frames plus pointers), then frame 7 is the timed step
(``propagation._step``: memory attention, mask decoder, memory encoder for every object; the
frame's image features are cached first, so encoding is not in the time).

``speed``: the step with ``propagation.SHARE_ACROSS_OBJECTS`` off (the old path: every object
runs the whole memory attention) and on, alternating frame by frame so that machine load hits
both alike; medians; the outputs of the two paths are compared bit for bit.
``profile``: the same step once per setting, seconds spent in each part of the model (module
forward hooks; the attention kernel and RoPE timed separately).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cpu import describe  # noqa: E402
from bench_tracking import SyntheticStack  # noqa: E402

from napari_sam2.engine import TrackingSession, propagation  # noqa: E402
from napari_sam2.engine.object_track import FrameOutput  # noqa: E402
from napari_sam2.model import transformer  # noqa: E402

STEP_FRAME = 7  # frames 0..6 hold the memories


def load(variant: str):
    if variant == "demo":
        from napari_sam2.model import load_model

        return load_model("sam2_demo", device="cpu", progress=False).eval()
    from tests.reference_weights import reference_model

    return reference_model("sam2.1_hiera_tiny").eval()


def full_session(model, n_objects: int) -> tuple[TrackingSession, list]:
    """A session whose ``n_objects`` objects each have 7 memories before frame 7."""
    stack = SyntheticStack(STEP_FRAME + 1)
    session = TrackingSession(model, stack, bfloat16=False, read_ahead=0)
    h, w = stack.shape[1:]
    rng = np.random.default_rng(0)
    for oid in range(1, n_objects + 1):
        session.add_points(0, oid, [(int(rng.integers(h // 8, h - h // 8)),
                                     int(rng.integers(w // 8, w - w // 8)))], [1])
    state = session.state
    tracks = [state.tracks[o] for o in sorted(state.tracks)]
    for t in tracks:
        t.consolidate()
        cond = t.cond[0]
        state.memory_of(t, 0)
        for f in range(1, STEP_FRAME):
            t.non_cond[f] = FrameOutput(cond.low_res.half(), cond.obj_ptr, cond.score, False,
                                        memory=cond.memory)
    state.frame_features(STEP_FRAME, store=True)
    return session, tracks


def step(session, tracks, share: bool):
    """One tracked frame for every object; the frame's (N, H, W) logits."""
    propagation.SHARE_ACROSS_OBJECTS = share
    try:
        for t in tracks:
            t.non_cond.pop(STEP_FRAME, None)
        with session.state.lock:
            return propagation._step(session.state, tracks, STEP_FRAME, False).logits
    finally:
        propagation.SHARE_ACROSS_OBJECTS = True


# ---------------------------------------------------------------------------- profile
class Timer:
    """Seconds per label: module forwards (hooks) and two patched functions."""

    def __init__(self, model) -> None:
        self.sec = defaultdict(float)
        self.handles = []
        parts = [("memory attention", model.memory_attention),
                 ("memory encoder", model.memory_encoder),
                 ("mask decoder", model.sam_mask_decoder),
                 ("prompt encoder", model.sam_prompt_encoder)]
        for i, layer in enumerate(model.memory_attention.layers):
            cross = layer.cross_attn_image
            parts += [(f"  layer {i} self-attention", layer.self_attn),
                      (f"  layer {i} cross-attention", cross),
                      (f"    layer {i} cross k_proj", cross.k_proj),
                      (f"    layer {i} cross v_proj", cross.v_proj),
                      (f"    layer {i} cross q_proj", cross.q_proj),
                      (f"  layer {i} FFN", layer.linear1), (f"  layer {i} FFN", layer.linear2)]
        for label, mod in parts:
            self._hook(label, mod)
        self.orig = (transformer.attention, transformer.apply_rope)
        transformer.attention = self._timed("attention kernel (all SDPA)", self.orig[0])
        transformer.apply_rope = self._timed("RoPE rotations (q and k)", self.orig[1])

    def _hook(self, label, mod) -> None:
        start = {}

        def pre(_m, _a):
            start["t"] = time.perf_counter()

        def post(_m, _a, _o):
            self.sec[label] += time.perf_counter() - start["t"]

        self.handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]

    def _timed(self, label, fn):
        def wrapped(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            self.sec[label] += time.perf_counter() - t
            return out
        return wrapped

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        transformer.attention, transformer.apply_rope = self.orig


def profile(model, n_objects: int) -> None:
    session, tracks = full_session(model, n_objects)
    step(session, tracks, True)  # warm-up
    for share in (False, True):
        timer = Timer(model)
        t0 = time.perf_counter()
        step(session, tracks, share)
        total = time.perf_counter() - t0
        timer.close()
        print(f"  {n_objects} object(s), sharing {'on' if share else 'off'}: step {total:.3f} s "
              f"({total / n_objects:.3f} s per object)")
        for label, s in sorted(timer.sec.items(), key=lambda kv: kv[0]):
            if s >= 0.001 * total:
                print(f"    {label:40s} {s:8.3f} s  {100 * s / total:5.1f} %  "
                      f"{s / n_objects * 1e3:8.1f} ms/object")


# ---------------------------------------------------------------------------- speed
def speed(model, n_objects: int, repeats: int) -> None:
    session, tracks = full_session(model, n_objects)
    times = {False: [], True: []}
    outs = {}
    step(session, tracks, True)  # warm-up
    for _ in range(repeats):
        for share in (False, True):
            t0 = time.perf_counter()
            outs[share] = step(session, tracks, share)
            times[share].append(time.perf_counter() - t0)
    old, new = (statistics.median(times[s]) for s in (False, True))
    same = np.array_equal(outs[False], outs[True])
    diff = float(np.abs(outs[False] - outs[True]).max())
    print(f"  {n_objects:3d} objects: old {old:8.3f} s/frame ({1 / old:7.2f} frames/s)  "
          f"shared {new:8.3f} s/frame ({1 / new:7.2f} frames/s)  speed-up {old / new:.3f}x  "
          f"outputs {'bit-identical' if same else f'max |diff| {diff:.2e}'} "
          f"(median of {repeats}; load {os.getloadavg()[0]:.1f})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("speed", "profile"), default="speed")
    ap.add_argument("--variant", choices=("demo", "tiny"), default="demo")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 3, 10, 30])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f}")
    model = load(args.variant)
    print(f"{args.variant}: {model.config.name}, S={model.config.image_size}, "
          f"{len(model.memory_attention.layers)} memory-attention layers")
    with torch.inference_mode():
        for n in args.objects:
            if args.part == "profile":
                profile(model, n)
            else:
                speed(model, n, args.repeats)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
