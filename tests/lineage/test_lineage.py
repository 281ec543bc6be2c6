"""Lineage bookkeeping (engine/lineage.py): numpy only, no model."""

import json

import numpy as np
import pytest

from napari_sam2.engine.lineage import Lineage, TrackSegment
from napari_sam2.errors import DamagedFileError


def _tree() -> Lineage:
    lin = Lineage()
    lin.add(1, 0)
    lin.add(4, 2)
    lin.divide(1, 10, [2, 3])
    return lin


def test_divide_ends_parent_and_starts_daughters():
    lin = _tree()
    assert lin.tracks[1] == TrackSegment(1, 0, 9, None)
    assert lin.tracks[2] == TrackSegment(2, 10, None, 1)
    assert lin.tracks[3] == TrackSegment(3, 10, None, 1)
    assert lin.children(1) == [2, 3]
    assert lin.children(4) == []
    assert lin.parents() == {2: 1, 3: 1}
    assert lin.divisions() == [(1, 10, [2, 3])]


def test_allows_frames_of_a_division():
    lin = _tree()
    assert lin.allows(1, 9) and not lin.allows(1, 10)
    assert lin.allows(2, 10) and not lin.allows(2, 9)
    assert lin.allows(4, 0)  # a root may be tracked back before its first prompt
    assert lin.allows(99, 5)  # unknown: no constraint


def test_add_moves_start_earlier_only():
    lin = Lineage()
    lin.add(1, 5)
    lin.add(1, 7)
    assert lin.tracks[1].start == 5
    lin.add(1, 3)
    assert lin.tracks[1].start == 3


@pytest.mark.parametrize("args, match", [
    ((1, 0, [2]), "later frame"),
    ((1, 10, []), "needs daughter"),
    ((1, 10, [2, 2]), "distinct"),
    ((1, 10, [4]), "already tracks"),
    ((7, 10, [8]), "unknown track 7"),
])
def test_divide_refuses_bad_requests_without_change(args, match):
    lin = Lineage()
    lin.add(1, 0)
    lin.add(4, 0)
    before = lin.copy()
    with pytest.raises(ValueError, match=match):
        lin.divide(*args)
    assert lin == before


def test_bad_add_and_end():
    lin = Lineage()
    with pytest.raises(ValueError, match="parent 5"):
        lin.add(1, 0, parent=5)
    lin.add(1, 3)
    with pytest.raises(ValueError, match="own parent"):
        lin.add(2, 0, parent=2)
    with pytest.raises(ValueError, match="cannot end before"):
        lin.end(1, 2)
    lin.end(1, 8)
    assert lin.tracks[1].end == 8
    with pytest.raises(TypeError):
        lin.add(True, 0)


def test_remove_makes_daughters_roots():
    lin = _tree()
    lin.remove(1)
    assert 1 not in lin
    assert lin.tracks[2].parent is None and lin.tracks[3].parent is None
    lin = _tree()
    lin.remove(2)
    assert lin.tracks[1].end == 9  # 3 is still a daughter
    lin.remove(3)
    assert lin.tracks[1].end is None and lin.divisions() == []  # the division is undone


def test_dict_round_trip_through_json():
    lin = _tree()
    back = Lineage.from_dict(json.loads(json.dumps(lin.to_dict())))
    assert back == lin


@pytest.mark.parametrize("damage", [
    lambda d: d.update(format="other"),
    lambda d: d.update(version=99),
    lambda d: d.update(tracks="x"),
    lambda d: d["tracks"][0].update(start=-1),
    lambda d: d["tracks"][0].update(start="0"),
    lambda d: d["tracks"][0].update(end=-5),
    lambda d: d["tracks"][1].update(parent=42),
    lambda d: d["tracks"][1].update(id=1),
    lambda d: d["tracks"][0].pop("end"),
    lambda d: d["tracks"][0].update(id=True),
])
def test_from_dict_refuses_damage(damage):
    d = _tree().to_dict()
    damage(d)
    with pytest.raises(DamagedFileError, match="lineage.json"):
        Lineage.from_dict(d, source="lineage.json")


def test_from_label_stack_fills_ranges_and_keeps_parents():
    labels = np.zeros((6, 8, 8), np.int32)
    labels[0:3, 1:3, 1:3] = 1
    labels[3:6, 1:3, 0:2] = 2
    labels[3:5, 5:7, 5:7] = 3
    labels[1:6, 6:8, 0:2] = 4
    lin = Lineage.from_label_stack(labels, parents=_tree())
    assert lin.tracks == {1: TrackSegment(1, 0, 2, None), 2: TrackSegment(2, 3, 5, 1),
                          3: TrackSegment(3, 3, 4, 1), 4: TrackSegment(4, 1, 5, None)}
    assert Lineage.from_label_stack(labels, {2: 9}).tracks[2].parent is None  # 9 absent
    with pytest.raises(ValueError, match="integer stack"):
        Lineage.from_label_stack(labels.astype(float))
