"""What a ``.zarr`` folder holds, judged from its ``zarr.json`` files alone (no zarr import).

* :func:`locate_label_image`: the NGFF label image at a path (itself, or the first entry of an
  OME-Zarr image's ``labels`` group), or a :class:`DamagedFileError` saying what is there.
* :func:`labels_target`: where labels saved "to" a path go (``image.zarr/labels/<name>`` for an
  OME-Zarr image), and :func:`check_replaceable`: refuse to replace anything that is not a label
  store written by napari-sam2.
* :func:`register_in_image`: add a label image's name to its image's ``labels`` group.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from napari_sam2._safe_write import json_text, write_text_atomic
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError

PROVENANCE_KEY = "napari_sam2"
NGFF_VERSION = "0.5"
# what a label store written by write_labels_zarr contains (plus Finder's litter)
_OUR_ROOT = {"zarr.json", "0", ".DS_Store"}
_OUR_ARRAY = {"zarr.json", "c", ".DS_Store"}
_ZARR_V2 = (".zgroup", ".zattrs", ".zarray")


def load_json(file: Path) -> dict:
    """A ``zarr.json`` as a dict, or a :class:`DamagedFileError` naming the file."""
    try:
        doc = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DamagedFileError(
            f"{file} cannot be read as JSON ({exc}): the store is damaged; restore it from a "
            "backup or save the labels again"
        ) from None
    if not isinstance(doc, dict):
        raise DamagedFileError(f"{file} holds {type(doc).__name__}, not a JSON object: the "
                               "store is damaged; restore it from a backup")
    return doc


def group_attrs(path: Path) -> dict | None:
    """The attributes of the zarr v3 group at ``path``; None if there is none. Never raises."""
    try:
        doc = load_json(path / "zarr.json")
    except (OSError, DamagedFileError):
        return None
    attrs = doc.get("attributes", {})
    return attrs if doc.get("node_type") == "group" and isinstance(attrs, dict) else None


def _ome(attrs: dict | None) -> dict:
    ome = (attrs or {}).get("ome")
    return ome if isinstance(ome, dict) else {}


def is_image(attrs: dict | None) -> bool:
    """An NGFF image group: multiscales without image-label."""
    ome = _ome(attrs)
    return bool(ome.get("multiscales")) and "image-label" not in ome


def _listing(path: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in path.iterdir())
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown})"


def describe_foreign(path: Path) -> str | None:
    """None when ``path`` may be replaced by a new label store (missing, an empty folder, or a
    label store written by napari-sam2 holding only its own files); else what is there."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink():
        return "a symbolic link"
    if not path.is_dir():
        return "a file (a label store is a folder)"
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return None
    if entries & set(_ZARR_V2):
        return "a zarr v2 store (OME-Zarr 0.4 or older)"
    if "zarr.json" not in entries:
        return f"a folder of other files: {_listing(path)}"
    try:
        doc = load_json(path / "zarr.json")
    except DamagedFileError:
        return "a zarr store whose zarr.json cannot be read"
    attrs = doc.get("attributes") if isinstance(doc.get("attributes"), dict) else {}
    if doc.get("node_type") != "group":
        return "a zarr array"
    if is_image(attrs):
        return "an OME-Zarr image"
    if PROVENANCE_KEY not in attrs or "image-label" not in _ome(attrs):
        return "a zarr group written by other software"
    extra = entries - _OUR_ROOT
    if (path / "0").is_dir():
        extra |= {f"0/{p.name}" for p in (path / "0").iterdir() if p.name not in _OUR_ARRAY}
    if extra:
        return f"a napari-sam2 label store that also holds other files ({', '.join(sorted(extra))})"
    return None


def check_replaceable(target: Path) -> None:
    """Raise :class:`RefusedOverwriteError` unless saving a label store to ``target`` may
    replace what is there (see :func:`describe_foreign`)."""
    what = describe_foreign(target)
    if what is not None:
        raise RefusedOverwriteError(
            f"Refusing to save labels to {target}: it is {what}, and saving would replace it "
            "(only label stores written by napari-sam2 and holding nothing else, or empty "
            "folders, are replaced). Nothing was changed. Choose another name, or move or "
            "delete it yourself first."
        )


def safe_label_name(name: str) -> str:
    """A folder name for ``labels/<name>``: letters, digits, ``-``, ``_`` and ``.`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "labels"


def labels_target(path, name: str = "labels") -> Path:
    """Where labels saved to ``path`` are written: ``path/labels/<name>`` when ``path`` is an
    OME-Zarr (NGFF 0.5) image (multiscales, no image-label), else ``path`` itself.

    ``name`` is made folder-safe (``"cells SAM labels"`` -> ``cells_SAM_labels``)."""
    path = Path(path)
    if is_image(group_attrs(path)):
        return path / "labels" / safe_label_name(name)
    return path


def image_of(target: Path) -> Path | None:
    """The OME-Zarr image holding ``target`` as ``image/labels/<name>``, else None."""
    image = target.parent.parent
    if target.parent.name == "labels" and is_image(group_attrs(image)):
        return image
    return None


def check_labels_group(image: Path) -> None:
    """Refuse when ``image/labels`` exists but is not a zarr v3 group (or an empty folder)."""
    group = image / "labels"
    if not group.exists() and not group.is_symlink():
        return
    if group.is_dir() and not group.is_symlink() and "zarr.json" not in {
        p.name for p in group.iterdir()
    } and not any(p.name.endswith(_ZARR_V2) for p in group.iterdir()):
        return  # a plain folder: the group's zarr.json is added beside what is there
    if group_attrs(group) is None:
        raise RefusedOverwriteError(
            f"Refusing to add labels to the OME-Zarr image {image}: {group} is not a zarr v3 "
            "group. Nothing was changed. Save the labels under another name."
        )


def register_in_image(target: Path) -> None:
    """Add ``target.name`` to ``ome.labels`` of its image's ``labels`` group (created when
    missing); other attributes of the group are kept. No-op outside an OME-Zarr image."""
    image = image_of(target)
    if image is None:
        return
    group = image / "labels"
    file = group / "zarr.json"
    doc = load_json(file) if file.exists() else {
        "zarr_format": 3, "node_type": "group", "attributes": {}}
    attrs = doc.setdefault("attributes", {})
    ome = attrs.setdefault("ome", {})
    ome.setdefault("version", NGFF_VERSION)
    names = [str(n) for n in ome.get("labels") or []]
    if target.name in names:
        return
    ome["labels"] = names + [target.name]
    write_text_atomic(file, json_text(doc, f"{file}", indent=2) + "\n")


def locate_label_image(path: Path) -> Path:
    """The folder of the NGFF label image at ``path`` (itself, or the first readable entry of
    its ``labels`` group); raises FileNotFoundError or :class:`DamagedFileError` saying why
    there is none."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path")
    if not path.is_dir():
        raise DamagedFileError(
            f"{path} is a file, not an OME-Zarr folder: a .zarr store is a directory; "
            "was it copied or unpacked incompletely?")
    if not (path / "zarr.json").exists():
        if any((path / n).exists() for n in _ZARR_V2):
            raise DamagedFileError(
                f"{path} is a zarr v2 store (OME-Zarr 0.4 or older); napari-sam2 reads "
                "OME-Zarr 0.5 (zarr v3) labels: open it with another reader or convert it")
        raise DamagedFileError(
            f"{path} is not an OME-Zarr (NGFF 0.5) label image: it has no zarr.json; choose "
            "the .zarr folder itself")
    doc = load_json(path / "zarr.json")
    if doc.get("node_type") != "group":
        raise DamagedFileError(
            f"{path} is a zarr array, not an OME-Zarr (NGFF 0.5) label image (a group with "
            "multiscales and image-label metadata)")
    attrs = doc.get("attributes", {})
    ome = _ome(attrs if isinstance(attrs, dict) else {})
    if "image-label" in ome:
        return path
    names = _ome(group_attrs(path / "labels")).get("labels")
    if (path / "labels").exists():
        for name in names if isinstance(names, list) else []:
            if _ome(group_attrs(path / "labels" / str(name))).get("multiscales"):
                return path / "labels" / str(name)
        raise DamagedFileError(
            f"{path}/labels lists the label images {names!r} but none of them can be read: "
            "the store is incomplete or damaged; restore it from a backup")
    if ome.get("multiscales"):
        raise DamagedFileError(
            f"{path} is an OME-Zarr image without labels: open it with napari's own reader "
            "(or napari-ome-zarr). Labels saved to it with napari-sam2 go to "
            f"{path.name}/labels/<name>.")
    raise DamagedFileError(
        f"{path} is not an OME-Zarr (NGFF 0.5) label image: its zarr group has no "
        "'multiscales' and 'image-label' metadata, nor a 'labels' group")


def looks_like_labels_zarr(path: Path) -> bool:
    """True when ``path`` claims to be a label store (readable or damaged). Never raises."""
    if not (path / "zarr.json").is_file():
        return False
    try:
        doc = load_json(path / "zarr.json")
    except DamagedFileError:
        return True
    except OSError:
        return False
    attrs = doc.get("attributes")
    return isinstance(attrs, dict) and (PROVENANCE_KEY in attrs or "image-label" in _ome(attrs))
