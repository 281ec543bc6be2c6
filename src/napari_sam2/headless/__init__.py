"""Headless runs: ``napari-sam2 track`` (one stack) and ``napari-sam2 batch`` (many, on Dask).

* ``inputs``: open image stacks lazily; ``prompts``: CSV, seed labels and saved records as
  ``SessionRecord``s; ``labels``: the widget's paste rules on a label store; ``runner``: replay
  and stream to OME-Zarr with resume; ``journal``: what resume needs; ``track_cli`` and
  ``batch_cli``: the commands. See docs/sessions.md.
"""
