"""The npe2 plugin: widget, reader, writers and sample data over the engine and io layers.

napari imports this package before any of the plugin's commands, and before the plugin imports
torch, so the OpenMP wait policy is chosen here (:mod:`napari_sam2.threads`).
"""

from napari_sam2.threads import use_passive_wait

use_passive_wait()
