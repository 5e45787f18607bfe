"""Bad input is refused before any work, with a message that names the problem."""

from __future__ import annotations

import pytest

from magnipath._errors import ModelError, SlideError
from magnipath.geometry import TileGeometry
from magnipath.infer import InferConfig, InferError, infer_slide
from magnipath.synth import SYNTH_CLASSES

from .conftest import INTENSITY_CLASSES, IntensityNet, constant_model_dir, make_card


def test_slide_coarser_than_the_model_is_refused(coarse_slide_file, tmp_path):
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(0.5, 32))  # 20x model, 5x slide
    with pytest.raises(SlideError) as e:
        infer_slide(coarse_slide_file.slide, (IntensityNet(), card), tmp_path)
    msg = str(e.value)
    assert "coarse.tif" in msg and "2 µm/px" in msg and "0.5 µm/px" in msg and "20x" in msg
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_dmmn_context_coarser_than_the_slide_is_fine_but_a_finer_target_is_not(
        coarse_slide_file, tmp_path):
    ok = make_card(INTENSITY_CLASSES, TileGeometry.dmmn(mpp=2.0, size=16))  # 5x, 2.5x, 1.25x
    res = infer_slide(coarse_slide_file.slide, (IntensityNet(3), ok), tmp_path / "ok",
                      InferConfig(tissue_mask=False))
    assert res.out_shape == (256, 256)
    finer = make_card(INTENSITY_CLASSES, TileGeometry.dmmn(mpp=1.0, size=16))
    with pytest.raises(SlideError, match="1 µm/px"):
        infer_slide(coarse_slide_file.slide, (IntensityNet(3), finer), tmp_path / "no")


def test_missing_model_folder_or_checkpoint(infer_slide_file, tmp_path):
    with pytest.raises(ModelError, match="nothing_here"):
        infer_slide(infer_slide_file.slide, tmp_path / "nothing_here", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"holds no best\.pt or last\.pt"):
        infer_slide(infer_slide_file.slide, tmp_path / "empty", tmp_path / "out")


def test_corrupt_checkpoint_is_named(infer_slide_file, tmp_path):
    folder = constant_model_dir(tmp_path / "model", 1, classes=SYNTH_CLASSES,
                                geometry=TileGeometry.single(1.0, 64))
    data = (folder / "best.pt").read_bytes()
    (folder / "best.pt").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(ModelError) as e:
        infer_slide(infer_slide_file.slide, folder, tmp_path / "out")
    assert str(folder / "best.pt") in str(e.value) and "damaged" in str(e.value)


def test_card_that_contradicts_the_checkpoint_is_refused(infer_slide_file, tmp_path):
    import json

    folder = constant_model_dir(tmp_path / "model", 1, classes=SYNTH_CLASSES,
                                geometry=TileGeometry.single(1.0, 64))
    card = json.loads((folder / "model_card.json").read_text())
    card["geometry"] = TileGeometry.single(0.5, 64).to_dict()
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="disagree on 'geometry'"):
        infer_slide(infer_slide_file.slide, folder, tmp_path / "out")


def test_card_geometry_that_does_not_fit_the_network_is_refused(infer_slide_file, tmp_path):
    card = make_card(INTENSITY_CLASSES, TileGeometry.dmmn(mpp=1.0, size=32))  # 3 inputs
    with pytest.raises(ModelError, match="takes 1 inputs"):
        infer_slide(infer_slide_file.slide, (IntensityNet(1), card), tmp_path)


def test_model_whose_output_differs_from_its_card_is_refused(infer_slide_file, tmp_path):
    from magnipath.classes import ClassMap

    card = make_card(ClassMap.from_names(["A", "B", "C", "D"]), TileGeometry.single(1.0, 32))
    with pytest.raises(ModelError, match=r"\(8, 4, 32, 32\)"):  # IntensityNet gives 3 classes
        infer_slide(infer_slide_file.slide, (IntensityNet(), card), tmp_path)


@pytest.mark.parametrize(("cfg", "field"), [
    (InferConfig(stride=0), "stride"), (InferConfig(stride=33), "stride"),
    (InferConfig(batch_size=0), "batch size"), (InferConfig(workers=0), "workers"),
    (InferConfig(min_tissue=1.0), "min_tissue"), (InferConfig(chunk=4), "chunk"),
    (InferConfig(region=(5000, 0, 10, 10)), "outside the slide"),
    (InferConfig(region=(0, 0, -1, 10)), "positive width"),
])
def test_bad_settings_are_named(infer_slide_file, tmp_path, intensity_model, cfg, field):
    with pytest.raises(InferError, match=field):
        infer_slide(infer_slide_file.slide, intensity_model, tmp_path, cfg)
