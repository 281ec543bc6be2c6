"""GEFF export of tracks (the ``geff`` package): one node per track and frame, edges along
tracks and from a parent's last node to its daughters' first nodes.

Node properties: ``t`` (frame), ``y``, ``x`` (centroid, pixels), ``area`` (pixels),
``track_id`` (the label in the stack, declared as GEFF's ``tracklet`` property) and
``seg_id`` (the same label: the node's pixels are ``labels[t] == seg_id``). Axes ``t``
(time), ``y``, ``x`` (space). A track with a gap keeps its id; its nodes on both sides of the
gap are linked. The store is a zarr v2 group written atomically (hidden sibling, checked with
``geff.validate_structure``, renamed into place).
"""

from __future__ import annotations

from pathlib import Path

from napari_sam2._safe_write import atomic_dir
from napari_sam2.io._tracks import (
    check_export_target,
    check_parents,
    frames_by_track,
    mark_export,
    nodes,
    usable_parents,
)

__all__ = ["tracks_graph", "write_geff"]


def tracks_graph(labels, parents=None):
    """A ``networkx.DiGraph`` of the tracks in ``labels`` (T, H, W) with ``parents``
    ({daughter: parent}); node ids 0..N-1 in (track, frame) order."""
    import networkx as nx

    all_nodes = nodes(labels)
    frames = frames_by_track(all_nodes)
    links = usable_parents(check_parents(parents), frames)
    graph = nx.DiGraph()
    first, last, prev = {}, {}, None
    for i, n in enumerate(all_nodes):
        graph.add_node(i, t=n.frame, y=float(n.y), x=float(n.x), area=n.area,
                       track_id=n.track, seg_id=n.track)
        if prev is not None and all_nodes[prev].track == n.track:
            graph.add_edge(prev, i)
        first.setdefault(n.track, i)
        last[n.track] = i
        prev = i
    for child, parent in links.items():
        graph.add_edge(last[parent], first[child])
    return graph


def write_geff(path, labels, parents=None) -> Path:
    """Write the tracks of ``labels`` (T, H, W) with ``parents`` as a GEFF zarr at ``path``
    (e.g. ``tracks.geff`` or ``tracks.zarr``); replaced only if empty or an earlier
    napari-sam2 export. Returns the path."""
    import geff

    path = Path(path)
    check_export_target(path, "geff")
    graph = tracks_graph(labels, parents)

    def write(tmp: Path) -> None:
        geff.write(graph, tmp, axis_names=["t", "y", "x"],
                   axis_types=["time", "space", "space"], axis_units=[None, "pixel", "pixel"],
                   overwrite=True)  # tmp is our own new empty folder
        meta = geff.GeffMetadata.read(tmp)
        meta.track_node_props = {"tracklet": "track_id"}
        meta.write(tmp)
        mark_export(tmp, "geff")

    return atomic_dir(path, write, lambda tmp: geff.validate_structure(tmp))
