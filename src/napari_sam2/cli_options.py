"""Argument types for the command line: each checks one option's value before any work starts.

Used as ``parser.add_argument("--steps", type=positive_int)``. A bad value raises
``argparse.ArgumentTypeError`` with a message that says what is wrong and what to give;
argparse prefixes it with the option's name (``argument --steps: must be a whole number >= 1,
got -3``). Nothing here imports torch, so ``napari-sam2 --help`` stays fast.
"""

from __future__ import annotations

import argparse
import re

__all__ = [
    "DEVICE_NAMES",
    "device_name",
    "fraction",
    "fraction_below_one",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "variant_name",
]

#: Device names the options accept (plus ``cuda:N``); whether the device exists is checked
#: by ``napari_sam2.model.device.choose_device`` before any model is built.
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and value != value:  # NaN passes every comparison below
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def _at_least(text: str, kind: type, low, *, strict: bool, what: str):
    value = _number(text, kind, what)
    if value < low or (strict and value == low) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts, steps, threads, sizes)."""
    return _at_least(text, int, 1, strict=False, what="a whole number >= 1")


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (warm-up steps, corrections, seeds)."""
    return _at_least(text, int, 0, strict=False, what="a whole number >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0 (minutes, seconds, learning rates)."""
    return _at_least(text, float, 0.0, strict=True, what="a number > 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (box noise)."""
    return _at_least(text, float, 0.0, strict=False, what="a number >= 0")


def fraction(text: str) -> float:
    """A number in [0, 1] (shares and probabilities)."""
    value = _number(text, float, "a number from 0 to 1")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def fraction_below_one(text: str) -> float:
    """A number in [0, 1) (dropout rates, held-out shares)."""
    value = _number(text, float, "a number from 0 up to (not including) 1")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"must be a number from 0 up to (not including) 1, got {text}")
    return value


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (lower-cased)."""
    name = text.strip().lower()
    if name in DEVICE_NAMES or re.fullmatch(r"cuda:\d+", name):
        return name
    raise argparse.ArgumentTypeError(
        f"unknown device {text!r}: use one of {', '.join(DEVICE_NAMES)} (or cuda:N)")


def variant_name(text: str) -> str:
    """A registered model variant (``napari_sam2.model.config.VARIANTS``)."""
    from napari_sam2.model.config import VARIANTS  # torch-free

    if text in VARIANTS:
        return text
    raise argparse.ArgumentTypeError(
        f"unknown variant {text!r}; known variants: {', '.join(VARIANTS)}")
