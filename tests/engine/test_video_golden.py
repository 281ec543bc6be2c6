"""Parity with Meta's video predictor (sam2.1_hiera_tiny, reference weights, 8 frames).

The fixture (tests/data/make_video_fixtures.py) holds Meta's outputs for the script: click on
frame 0 (object 1), box on frame 3 (object 2), propagate, correction click on frame 5 (object
1), propagate from 5, propagate in reverse from 7 -- once with Meta's default config
(``corrections_as_conditioning=False``) and once with ``add_all_frames_to_correct_as_cond``
(True). Checked per frame and object: object scores and pointers within 1e-3 x max|ref|,
identical presence decisions and conditioning frames, < 1e-4 of mask pixels flipped, and the
logits within 1e-3 x max|ref| for the maps the fixture keeps.

Both modes run the whole script in the default suite (about 56 object-frames of the 1024
model, 1.5-3 minutes per mode on 2 CPU cores, frames encoded once for the module);
``test_first_stages_match_meta`` is the quick check of the prompts and the first two
propagated frames, for ``-k first_stages`` while working on the engine.
"""

from __future__ import annotations

import hashlib
import json
import lzma

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.transforms import IMAGENET_MEAN, IMAGENET_STD
from tests.reference_weights import reference_model

H, W = 240, 320
TOL = 1e-3  # x max |reference|
MAX_FLIPS = 1e-4  # fraction of mask pixels


@pytest.fixture(scope="module")
def golden(data_dir):
    z = np.load(data_dir / "golden_video_sam2.1_tiny.npz")
    return {k: z[k] for k in z.files}, json.loads(str(z["meta"]))


@pytest.fixture(scope="module")
def images(golden):
    """Meta's model input, rebuilt from the decoded frames (PIL bicubic on uint8)."""
    from PIL import Image

    arrays, meta = golden
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    out = []
    for frame in arrays["frames_jpeg_decoded_uint8"]:
        resized = np.asarray(Image.fromarray(frame).resize((1024, 1024)))
        x = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
        out.append((x - mean) / std)
    imgs = np.ascontiguousarray(np.stack(out), np.float32)
    sha = hashlib.sha256(imgs.tobytes()).hexdigest()
    assert sha == meta["inputs_sha256"], "PIL's bicubic resize no longer matches Meta's input"
    return imgs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return reference_model("sam2.1_hiera_tiny").eval()


@pytest.fixture(scope="module")
def feature_cache(model, images):
    """One cache for every session here: each frame is encoded once, on first use."""
    return TrackingSession.from_model_inputs(model, images, (H, W),
                                             bfloat16=False).feature_cache


def _session(model, images, feature_cache, as_cond):
    return TrackingSession.from_model_inputs(model, images, (H, W), feature_cache=feature_cache,
                                             corrections_as_conditioning=as_cond,
                                             bfloat16=False)


def _prompts(meta):
    p = meta["prompts"]
    click, box, corr = p["click0"], p["box3"], p["corr5"]
    return (
        lambda s: s.add_points(click["frame"], click["obj_id"], click["points_rc"],
                               click["labels"]),
        lambda s: s.add_box(box["frame"], box["obj_id"], box["box_rc"]),
        lambda s: s.add_points(corr["frame"], corr["obj_id"], corr["points_rc"], corr["labels"]),
    )


def _record(session, results):
    """Per propagated frame: the result, pointers (2, C) and conditioning flags (2,)."""
    out = []
    for r in results:
        ptrs = np.stack([session.state.tracks[o].output(r.frame).obj_ptr[0].numpy()
                         for o in r.obj_ids])
        cond = np.array([r.frame in session.conditioning_frames(o) for o in r.obj_ids])
        out.append((r, ptrs, cond))
    return out


def _ref_logits(arrays, key):
    """Dequantised reference logits at video resolution, their max |.| and the error bound."""
    name = "logits_" + "_".join(str(k) for k in key)
    shape = tuple(arrays[name + "_shape"])
    q = np.frombuffer(lzma.decompress(arrays[name].tobytes()), np.int16).reshape(shape)
    scale = float(arrays[name + "_scale"])
    x = np.cumsum(q.astype(np.int64), axis=1) * scale
    if shape != (H, W):
        t = torch.from_numpy(x.astype(np.float32))[None, None]
        x = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()
    return x, float(arrays[name + "_vmax"]), scale / 2


def _check_map(arrays, meta, key, ours, ref_masks, report):
    flips = float(((ours > 0) != ref_masks).mean())
    assert flips < MAX_FLIPS, f"{key}: {flips:.2e} of mask pixels differ"
    if list(key) in meta["logit_maps"]:
        ref, vmax, qerr = _ref_logits(arrays, key)
        err = float(np.abs(ours - ref).max())
        assert err <= TOL * vmax - qerr, f"{key}: logits differ by {err / vmax:.2e} x max"
        report.append(err / vmax)


def _masks(arrays, mode, stage):
    packed = arrays[f"{mode}_{stage}_masks"]
    return np.unpackbits(packed, axis=-1, count=W).astype(bool)


def _check_prompt(arrays, meta, mode, stage, result, report):
    present = arrays[f"{mode}_{stage}_present"]
    assert result.obj_ids == [i + 1 for i in np.flatnonzero(present)]
    masks = _masks(arrays, mode, stage)
    for k, obj in enumerate(result.obj_ids):
        _check_map(arrays, meta, (mode, stage, 0, obj - 1), result.logits[k], masks[obj - 1],
                   report)


def _check_stage(arrays, meta, mode, stage, recorded, report, n=None):
    frames = arrays[f"{mode}_{stage}_frames"]
    n = len(frames) if n is None else n
    assert [r.frame for r, _, _ in recorded] == frames[:n].tolist()
    scores, ptrs = arrays[f"{mode}_{stage}_objscore"], arrays[f"{mode}_{stage}_objptr"]
    masks, is_cond = _masks(arrays, mode, stage), arrays[f"{mode}_{stage}_is_cond"]
    for i, (r, our_ptrs, our_cond) in enumerate(recorded[:n]):
        assert r.obj_ids == [1, 2]
        assert np.abs(r.object_scores - scores[i]).max() <= TOL * np.abs(scores).max()
        assert ((r.object_scores > 0) == (scores[i] > 0)).all()
        assert np.abs(our_ptrs - ptrs[i]).max() <= TOL * np.abs(ptrs).max()
        assert (our_cond == is_cond[i]).all(), f"{mode} {stage} frame {r.frame}: cond flags"
        for j in range(2):
            _check_map(arrays, meta, (mode, stage, i, j), r.logits[j], masks[i, j], report)


def test_first_stages_match_meta(golden, model, images, feature_cache):
    """Click, box and the first two propagated frames (default run)."""
    arrays, meta = golden
    click, box, _ = _prompts(meta)
    s = _session(model, images, feature_cache, as_cond=False)
    report: list[float] = []
    _check_prompt(arrays, meta, "default", "click0", click(s), report)
    _check_prompt(arrays, meta, "default", "box3", box(s), report)
    rec = _record(s, s.propagate(max_frames=1))
    _check_stage(arrays, meta, "default", "fwd1", rec, report, n=2)
    assert len(report) >= 4  # logits were compared, not only masks


@pytest.mark.parametrize("mode", ["default", "cond"])
def test_whole_script_matches_meta(golden, model, images, feature_cache, mode):
    arrays, meta = golden
    click, box, corr = _prompts(meta)
    s = _session(model, images, feature_cache, as_cond=(mode == "cond"))
    report: list[float] = []
    _check_prompt(arrays, meta, mode, "click0", click(s), report)
    _check_prompt(arrays, meta, mode, "box3", box(s), report)
    _check_stage(arrays, meta, mode, "fwd1", _record(s, s.propagate()), report)
    _check_prompt(arrays, meta, mode, "corr5", corr(s), report)
    _check_stage(arrays, meta, mode, "fwd2", _record(s, s.propagate(5)), report)
    _check_stage(arrays, meta, mode, "rev", _record(s, s.propagate(7, reverse=True)), report)
    assert s.conditioning_frames(1) == ([0, 5] if mode == "cond" else [0])
    print(f"{mode}: {len(report)} logit maps, worst {max(report):.2e} x max")
