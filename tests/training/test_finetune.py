"""Fine-tuning end to end on tiny TIFF / zarr stacks (2D, 2D+t, 3D), and bad input."""

import numpy as np
import pytest
import tifffile
import zarr

from napari_sam2.cli import main
from napari_sam2.data import make_cell_timelapse, make_ellipsoid_volume
from napari_sam2.model import build_model, load_model
from napari_sam2.training.export import export_weights
from napari_sam2.training.finetune import finetune, split_stacks
from napari_sam2.training.stack_io import check_pair, load_pair


@pytest.fixture
def base_weights(tmp_path):
    import torch

    torch.manual_seed(0)
    return export_weights(build_model("sam2_demo"), tmp_path / "base.safetensors")


@pytest.fixture
def files(tmp_path):
    movie, movie_lab = make_cell_timelapse(n_frames=3, shape=(64, 80), n_cells=3, seed=5)
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    tifffile.imwrite(tmp_path / "movie_labels.tif", movie_lab, photometric="minisblack")
    vol, vol_lab = make_ellipsoid_volume(shape=(8, 64, 64), n_objects=3, seed=6)
    zarr.save_array(str(tmp_path / "vol.zarr"), vol)
    zarr.save_array(str(tmp_path / "vol_labels.zarr"), vol_lab)
    tifffile.imwrite(tmp_path / "still.tif", movie[0])
    tifffile.imwrite(tmp_path / "still_labels.tif", movie_lab[0])
    return tmp_path


def test_finetune_2d_t_tiff_and_3d_zarr_end_to_end(files, base_weights, tmp_path):
    stacks = [load_pair(files / "movie.tif", files / "movie_labels.tif"),
              load_pair(files / "vol.zarr", files / "vol_labels.zarr")]
    assert stacks[0][0].shape == (3, 64, 80) and stacks[1][0].shape == (8, 64, 64)
    lines = []
    result = finetune(stacks, variant="sam2_demo", checkpoint=base_weights,
                      output=tmp_path / "tuned.safetensors", epochs=2, steps_per_epoch=1,
                      lr=1e-4, objects_per_image=2, image_batch=1, num_frames=3,
                      log=lines.append)
    assert result.steps == 2 and not result.validated_on_training_data
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert any("val click IoU" in line for line in lines)
    model = load_model("sam2_demo", checkpoint=result.output)
    base = load_model("sam2_demo", checkpoint=base_weights)
    changed = [n for (n, p), (_, q) in zip(model.state_dict().items(), base.state_dict().items())
               if not (p == q).all()]
    assert changed  # the weights were really updated


def test_finetune_cli_on_a_2d_image(files, base_weights, tmp_path, capsys):
    out = tmp_path / "tuned2d.safetensors"
    code = main(["finetune", "--images", str(files / "still.tif"), "--labels",
                 str(files / "still_labels.tif"), "--checkpoint", str(base_weights),
                 "--output", str(out), "--epochs", "1", "--steps-per-epoch", "1"])
    assert code == 0
    text = capsys.readouterr().out
    assert "no held-out frames" in text and "epoch 1" in text
    load_model("sam2_demo", checkpoint=out)


def test_split_keeps_last_frames_for_validation():
    im = np.zeros((10, 8, 8))
    lab = np.ones((10, 8, 8), int)
    train, val, reused = split_stacks([(im, lab)], 0.2)
    assert train[0][0].shape[0] == 8 and val[0][0].shape[0] == 2 and not reused
    train, val, reused = split_stacks([(im[:1], lab[:1])], 0.2)
    assert reused and val[0][0].shape[0] == 1


def test_bad_input_is_reported_before_training(files, tmp_path, capsys):
    missing_model = tmp_path / "no_such_model.safetensors"  # never reached
    im, lab = make_cell_timelapse(n_frames=2, shape=(64, 64), n_cells=2)
    with pytest.raises(ValueError, match="shape .* but the images have shape"):
        finetune([(im, lab[:, :32])], checkpoint=missing_model)
    with pytest.raises(ValueError, match="contains no object"):
        finetune([(im, np.zeros_like(lab))], checkpoint=missing_model)
    with pytest.raises(ValueError, match="label stack .* is empty"):
        finetune([(im, np.zeros((0, 64, 64), int))], checkpoint=missing_model)
    with pytest.raises(ValueError, match="fractional"):
        check_pair(im, lab + 0.5)
    (tmp_path / "broken.tif").write_bytes(b"this is not a tiff file")
    with pytest.raises(ValueError, match="cannot read .*broken.tif"):
        load_pair(tmp_path / "broken.tif", files / "movie_labels.tif")
    with pytest.raises(ValueError, match="does not exist"):
        load_pair(tmp_path / "nope.tif", files / "movie_labels.tif")
    code = main(["finetune", "--images", str(files / "movie.tif"), "--labels",
                 str(files / "still_labels.tif"), "--output", str(tmp_path / "x.safetensors"),
                 "--checkpoint", str(missing_model)])
    assert code == 2
    assert "must match" in capsys.readouterr().err
