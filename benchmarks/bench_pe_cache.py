"""Position-encoding caches: time per tracked frame, per memory-attention step and per click,
this checkout's ``position_encoding`` against an older copy of that file, in the same run.

    PYTHONPATH=src OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pe_cache.py
    ... --baseline-file /work/main/src/napari_sam2/model/position_encoding.py --frames 8

The baseline's ``apply_rope`` and ``PositionEmbeddingSine.forward``/``encoding`` are patched in
and out between steps; the two code paths run alternately (one frame of each in turn, one
memory-attention call of each in turn, one click of each in turn) so that a change of machine
load hits both alike. Outputs of the two paths are compared bit for bit. Random-init weights
(speed does not depend on the values). Medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _cpu import cpu_flags  # noqa: E402
from bench_tracking import SyntheticStack, machine  # noqa: E402

from napari_sam2.engine import ImagePredictor, TrackingSession  # noqa: E402
from napari_sam2.model import build_model, position_encoding, transformer  # noqa: E402

NEW = {"apply_rope": position_encoding.apply_rope,
       "forward": position_encoding.PositionEmbeddingSine.forward,
       "encoding": position_encoding.PositionEmbeddingSine.encoding}



def load_baseline(path: str) -> dict:
    spec = importlib.util.spec_from_file_location("baseline_position_encoding", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {"apply_rope": mod.apply_rope, "forward": mod.PositionEmbeddingSine.forward,
            "encoding": mod.PositionEmbeddingSine.encoding}


def use(code: dict) -> None:
    transformer.apply_rope = code["apply_rope"]
    position_encoding.PositionEmbeddingSine.forward = code["forward"]
    position_encoding.PositionEmbeddingSine.encoding = code["encoding"]


def alternate(codes: dict, fn, repeats: int) -> tuple[dict, dict]:
    """Call ``fn(name)`` under each code in turn, ``repeats`` rounds; seconds and last output."""
    times, outs = {n: [] for n in codes}, {}
    for _ in range(repeats):
        for name, code in codes.items():
            use(code)
            t = time.perf_counter()
            outs[name] = fn(name)
            times[name].append(time.perf_counter() - t)
    use(NEW)
    return times, outs


def report(label: str, times: dict, unit: float, suffix: str, skip: int = 0) -> None:
    med = {n: statistics.median(t[skip:]) for n, t in times.items()}
    parts = ", ".join(f"{n} {m * unit:.1f} {suffix}" for n, m in med.items())
    print(f"  {label}: {parts} (median of {len(next(iter(times.values()))) - skip}); "
          f"saving {(med['baseline'] - med['cached']) * unit:+.1f} {suffix} "
          f"({(1 - med['cached'] / med['baseline']) * 100:+.1f} %)", flush=True)


def bench_tracking(codes: dict, variant: str, n_frames: int) -> None:
    torch.manual_seed(0)
    model = build_model(variant).eval()
    stack = SyntheticStack(n_frames)
    runs = {}
    for name in codes:
        session = TrackingSession(model, stack)
        session.add_points(0, 1, [[64, 51]], [1])
        runs[name] = iter(session.propagate())
    times, masks = {n: [] for n in codes}, {n: [] for n in codes}
    for _ in range(n_frames):
        for name, code in codes.items():
            use(code)
            t = time.perf_counter()
            out = next(runs[name])
            times[name].append(time.perf_counter() - t)
            masks[name].append(out)
    use(NEW)
    same = all(a.obj_ids == b.obj_ids and np.array_equal(a.logits, b.logits)
               and np.array_equal(a.object_scores, b.object_scores)
               for a, b in zip(*masks.values()))
    # the first item is the prompted frame (already decoded): not a propagation step
    report(f"{variant} tracked frame (1 object, {n_frames - 1} propagated, encoding included)",
           times, 1e3, "ms", skip=1)
    print(f"    outputs identical: {same}")


def bench_memory_attention(codes: dict, variant: str, n_mem: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = build_model(variant).eval()
    cfg = model.config
    C, Cm, h = cfg.hidden_dim, cfg.mem_dim, cfg.image_size // 16
    cur, cur_pos = torch.randn(1, C, h, h), torch.randn(1, C, h, h)
    n_ptr = 16 * C // Cm
    mem = torch.randn(n_mem * h * h + n_ptr, 1, Cm)
    mem_pos = torch.randn_like(mem)

    def step(_):
        with torch.inference_mode():
            return model.condition_on_memory(cur, cur_pos, mem, mem_pos, n_ptr)

    times, outs = alternate(codes, step, repeats)
    report(f"{variant} memory attention ({n_mem} memory frames + 16 pointers)", times, 1e3,
           "ms", skip=1)
    print(f"    outputs identical: {torch.equal(outs['baseline'], outs['cached'])}")


def bench_click(codes: dict, variant: str, repeats: int) -> None:
    torch.manual_seed(0)
    model = build_model(variant).eval()
    pred = ImagePredictor(model)
    image = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
    pred.set_image(image)
    times, outs = alternate(codes, lambda _: pred.predict(points=[[200, 170]], labels=[1]),
                            repeats)
    report(f"{variant} click on an encoded image", times, 1e3, "ms", skip=3)
    a, b = outs["baseline"], outs["cached"]
    same = all(np.array_equal(getattr(a, f), getattr(b, f)) for f in vars(a))
    print(f"    outputs identical ({', '.join(vars(a))}): {same}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline-file",
                   default="/work/main/src/napari_sam2/model/position_encoding.py")
    p.add_argument("--frames", type=int, default=8, help="frames per tracking run")
    p.add_argument("--tiny-frames", type=int, default=0,
                   help="also track sam2.1_hiera_tiny at 1024 over this many frames (~5 s each)")
    p.add_argument("--repeats", type=int, default=6, help="memory-attention calls per path")
    p.add_argument("--clicks", type=int, default=30)
    args = p.parse_args()
    codes = {"baseline": load_baseline(args.baseline_file), "cached": NEW}
    print(f"machine: {machine()}; flags: {cpu_flags()}")
    print(f"baseline: {args.baseline_file}")
    bench_tracking(codes, "sam2_demo", args.frames)
    bench_memory_attention(codes, "sam2_demo", 7, args.repeats * 4)
    bench_click(codes, "sam2_demo", args.clicks)
    bench_memory_attention(codes, "sam2.1_hiera_tiny", 7, args.repeats)
    bench_click(codes, "sam2.1_hiera_tiny", args.clicks)
    if args.tiny_frames:
        bench_tracking(codes, "sam2.1_hiera_tiny", args.tiny_frames)


if __name__ == "__main__":
    main()
