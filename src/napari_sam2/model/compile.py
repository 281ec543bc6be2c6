"""Optional ``torch.compile`` of a model's heavy parts, in place and reversible.

The image encoder and memory attention are where a tracked frame spends its time. Compiling
their ``forward`` (not the modules themselves) leaves the weights and the state-dict keys as
they are, so checkpoints load as before. Memory attention is compiled for dynamic shapes:
its number of memory tokens grows over the first frames and changes with the objects'
prompts. The first call of each shape compiles (a minute or more; on the CPU it needs a C++
compiler), later calls reuse it. Results agree with eager mode to float rounding.

    from napari_sam2.model import load_model
    from napari_sam2.model.compile import compile_parts
    model = load_model("sam2.1_hiera_tiny", device="cuda")
    compile_parts(model, mode="max-autotune")   # options go to torch.compile
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["COMPILABLE_PARTS", "compile_parts", "compiled_parts", "uncompile_parts"]

#: parts that may be compiled, and whether their input shapes change between calls
COMPILABLE_PARTS: dict[str, bool] = {
    "image_encoder": False,
    "memory_attention": True,
    "memory_encoder": False,
    "sam_mask_decoder": False,
}


def compile_parts(model: nn.Module, parts: tuple[str, ...] = ("image_encoder", "memory_attention"),
                  **options) -> None:
    """Replace the ``forward`` of each named part of ``model`` by its ``torch.compile``.

    ``options`` go to ``torch.compile`` (``mode``, ``fullgraph``, ``backend`` ...);
    ``dynamic`` defaults to the part's entry in :data:`COMPILABLE_PARTS`. A part compiled
    already is compiled again from its eager ``forward`` (with the new options).

    Raises:
        ValueError: a part name that is not in :data:`COMPILABLE_PARTS`.
    """
    unknown = [p for p in parts if p not in COMPILABLE_PARTS]
    if unknown:
        raise ValueError(f"cannot compile {unknown}: the parts that can be compiled are "
                         f"{list(COMPILABLE_PARTS)}")
    for name in parts:
        module = getattr(model, name)
        module.__dict__.pop("forward", None)  # back to the class's eager forward
        kwargs = {"dynamic": COMPILABLE_PARTS[name], **options}
        module.forward = torch.compile(module.forward, **kwargs)


def compiled_parts(model: nn.Module) -> list[str]:
    """The names of the parts of ``model`` whose ``forward`` is compiled now."""
    return [name for name in COMPILABLE_PARTS if "forward" in getattr(model, name).__dict__]


def uncompile_parts(model: nn.Module) -> None:
    """Give every compiled part its eager ``forward`` back."""
    for name in COMPILABLE_PARTS:
        getattr(model, name).__dict__.pop("forward", None)
