"""napari-sam2: SAM 2 in clean PyTorch, and a napari plugin around it.

Importing this package is cheap: it loads neither torch, Qt nor napari. The model lives in
:mod:`napari_sam2.model`, the predictors and the tracking session in :mod:`napari_sam2.engine`,
file formats in :mod:`napari_sam2.io` and the napari plugin in :mod:`napari_sam2._napari`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
