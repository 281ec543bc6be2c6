"""Seconds per training step (image and video steps), our dropout against torch's, same run.

    .venv/bin/python benchmarks/bench_training.py --threads 2
    .venv/bin/python benchmarks/bench_training.py --variant sam2_demo --clips 8 --repeats 2

Prints the machine, then the median seconds of a forward + backward rollout for image steps
(4 one-frame clips, 8 objects each) and video steps (one 8-frame clip, 4 objects, the paper's
prompting), at the variant's input size, for:

* ``ours``: the model as trained (``model.layers.dropout``, explicit softmax + fast dropout in
  memory attention on CPU);
* ``torch dropout``: the same model with ``nn.Dropout`` and the fused attention's own dropout
  (the baseline; what the code did before);
* ``no dropout``: memory-attention dropout off (the floor).

The same clips and prompts are used for every setting, in turn, so load changes hit all alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import types

import numpy as np
import torch
import torch.nn.functional as F


def _machine() -> str:
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads").strip()


def _torch_attend(self, q, k, v):
    p = self.dropout_p if self.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
    return self.out_proj(out.transpose(1, 2).flatten(2))


def _set_dropout(model, mode: str, p: float) -> None:
    """mode: 'ours', 'torch' or 'off' for every dropout of memory attention."""
    from napari_sam2.model.layers import Dropout
    from napari_sam2.model.transformer import Attention

    for layer in model.memory_attention.layers:  # torch's modules, or back to ours
        for name, child in list(layer.named_children()):
            if isinstance(child, torch.nn.Dropout):
                setattr(layer, name, (torch.nn.Dropout if mode == "torch" else Dropout)().train())
            if isinstance(child, Attention):
                if mode == "torch":
                    child._attend = types.MethodType(_torch_attend, child)
                else:
                    child.__dict__.pop("_attend", None)
    model.memory_attention.set_dropout(0.0 if mode == "off" else p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sam2_demo")
    parser.add_argument("--clips", type=int, default=6, help="different batches per kind")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_sam2.model import build_model
    from napari_sam2.training.datasets import SyntheticClips
    from napari_sam2.training.tracking_loop import RolloutOptions, rollout

    print(f"machine: {_machine()}")
    torch.manual_seed(0)
    model = build_model(args.variant).train()
    p = model.config.memory_attention.dropout
    size = model.config.image_size
    rng = np.random.default_rng(0)
    kinds = {
        "image": ([[SyntheticClips(size, num_frames=1, max_objects=8).sample(rng)
                    for _ in range(4)] for _ in range(args.clips)],
                  RolloutOptions(prompt_probs=(0, 0.5, 0.5), second_prompt_prob=0.0)),
        "video": ([[SyntheticClips(size, num_frames=8, max_objects=4).sample(rng)]
                   for _ in range(args.clips)], RolloutOptions()),
    }
    modes = ("ours", "torch", "off")
    labels = {"ours": "ours", "torch": "torch dropout (baseline)", "off": "no dropout (floor)"}
    print(f"{args.variant} at {size} px, memory-attention dropout {p}; median s/step over "
          f"{args.clips} batches x {args.repeats}")
    for kind, (batches, opts) in kinds.items():
        times = {m: [] for m in modes}
        rollout(model, batches[0], torch.Generator().manual_seed(0), opts).loss.backward()
        model.zero_grad(set_to_none=True)  # warm-up, untimed
        for _ in range(args.repeats):
            for i, clips in enumerate(batches):
                for mode in modes:
                    _set_dropout(model, mode, p)
                    torch.manual_seed(i)
                    start = time.perf_counter()
                    result = rollout(model, clips, torch.Generator().manual_seed(i), opts)
                    result.loss.backward()
                    times[mode].append(time.perf_counter() - start)
                    model.zero_grad(set_to_none=True)
        base = float(np.median(times["torch"]))
        for mode in modes:
            med = float(np.median(times[mode]))
            print(f"  {kind:5s} {labels[mode]:26s} {med:6.3f} s/step  ({med / base:.2f} of "
                  f"baseline)")


if __name__ == "__main__":
    main()
