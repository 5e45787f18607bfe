"""Training, the model folder, evaluation and estimates on images of any size."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from magnipath.magnification import (
    MAGNIFICATIONS,
    MagnificationError,
    MagTrainConfig,
    estimate,
    evaluate,
    image_patches,
    load_model,
    open_dataset,
    predict_patches,
    read_image,
    suggest_mpp,
    train,
)
from magnipath.synth import SynthConfig, make_layout, render_region

TINY = MagTrainConfig(arch_kwargs={"widths": [4, 8, 8, 8]}, epochs=2, batch_size=8,
                      lr=1e-3, device="cpu", augment=True)


@pytest.fixture(scope="module")
def model_dir(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("mag_model") / "model"
    summary = train(dataset, out, TINY)
    assert set(summary["history"]) == {"direct", "area"}
    return out


def test_training_writes_a_loadable_folder_with_tables(model_dir, dataset):
    card = json.loads((model_dir / "card.json").read_text())
    assert card["arch"] == "shallownet" and card["alpha"] == 0.2
    assert (model_dir / "direct.pt").is_file() and (model_dir / "area.pt").is_file()
    ds = open_dataset(dataset)
    tr = ds.indices("train")
    # the area table is the mean training area per class
    for m, a in zip(card["area_table"]["magnifications"], card["area_table"]["mean_areas"],
                    strict=True):
        assert a == pytest.approx(ds.area[tr][ds.magnification[tr] == m].mean())
    for target in ("direct", "area"):
        hist = card["history"][target]
        assert len(hist) == 2 and all(h["steps"] > 0 for h in hist)
    model = load_model(model_dir)
    pred = predict_patches(np.asarray(ds.images[:3]), model)
    for key in ("direct", "direct_class", "area_px", "area_class", "fusion", "fusion_class",
                "baseline_area_px", "baseline_class"):
        assert pred[key].shape == (3,)
    assert np.allclose(pred["fusion"], 0.2 * pred["area_class"] + 0.8 * pred["direct"])
    assert set(pred["fusion_class"].tolist()) <= set(MAGNIFICATIONS)


def test_a_training_step_lowers_the_loss_on_its_batch(dataset):
    import torch

    from magnipath.magnification._nets import build_net, to_tensor

    ds = open_dataset(dataset)
    idx = ds.indices("train")[:8]
    x = to_tensor(np.asarray(ds.images[idx]))
    y = torch.as_tensor(ds.magnification[idx] / 40.0, dtype=torch.float32)
    net = build_net("shallownet", widths=[4, 8, 8, 8], dropout=0.0).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_evaluate_reports_kappa_f1_and_confusion_matrices(model_dir, dataset):
    ev = evaluate(model_dir, dataset, split="test")
    n = ev["n"]
    for m in ("direct", "area", "fusion", "baseline"):
        cm = np.array(ev[m]["confusion_matrix"])
        assert cm.shape == (7, 7)
        assert cm.sum() + ev[m]["n_undetermined"] == n
        assert -1 <= ev[m]["kappa"] <= 1 and 0 <= ev[m]["f1_macro"] <= 1
        assert ev[m]["accuracy"] == pytest.approx(np.trace(cm) / n)
    assert ev["direct"]["mae_magnification"] >= 0


@pytest.mark.slow
def test_longer_training_beats_chance_on_held_out_slides(sources, tmp_path):
    from magnipath.magnification import MagDataConfig, make_dataset

    data = tmp_path / "data"  # two training slides, one held-out test slide
    make_dataset(sources, data, MagDataConfig(per_class=8, ratios=(2, 0, 1), seed=2))
    cfg = TINY.replace(epochs=12, arch_kwargs={"widths": [8, 16, 16, 16]})
    train(data, tmp_path / "m", cfg)
    ev = evaluate(tmp_path / "m", data, split="test")
    # chance is kappa 0; the trained direct regressor must do clearly better
    assert ev["direct"]["kappa"] > 0.4, ev["direct"]


def test_image_patches_centre_tiles_and_padding():
    img = np.zeros((500, 700, 3), np.uint8)
    p, boxes, mode = image_patches(img, mode="center")
    assert mode == "center" and p.shape == (1, 224, 224, 3) and boxes == [(238, 138, 224, 224)]
    p, boxes, mode = image_patches(img, mode="tiles", max_tiles=4)
    assert mode == "tiles" and p.shape == (4, 224, 224, 3)
    assert all(b[2] == b[3] == 224 for b in boxes)
    small = np.zeros((100, 150, 3), np.uint8)
    p, boxes, mode = image_patches(small)
    assert p.shape == (1, 224, 224, 3) and mode == "center"
    assert (p[0, :62] == 255).all() and (p[0, 62:162, 37:187] == 0).all()
    with pytest.raises(MagnificationError, match="at least 32"):
        image_patches(np.zeros((10, 300, 3), np.uint8))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_read_image_formats(tmp_path, suffix):
    rgb = (np.arange(60 * 80 * 3) % 251).astype(np.uint8).reshape(60, 80, 3)
    path = tmp_path / f"im{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb)
    else:
        Image.fromarray(rgb).save(path, quality=100)
    got = read_image(path)
    assert got.shape == (60, 80, 3) and got.dtype == np.uint8
    if suffix != ".jpg":
        assert np.array_equal(got, rgb)


def test_estimate_follows_magnification_without_a_model():
    layout = make_layout(SynthConfig(width=2048, height=2048, seed=40))
    box = (256, 256, 1792, 1792)
    hi = estimate(render_region(layout, box, mpp=0.25)[:896, :896], method="baseline")  # 40x
    lo = estimate(render_region(layout, box, mpp=1.0), method="baseline")  # 10x, 448 px
    for r in (hi, lo):
        assert r["is_estimate"] is True and r["method"] == "baseline"
        assert r["magnification"] in MAGNIFICATIONS
        assert r["mpp_estimate"] == pytest.approx(10 / r["magnification"])
    assert hi["magnification"] >= 30 and lo["magnification"] <= 15, (hi, lo)


def test_estimate_with_a_model_and_from_a_file(model_dir, tmp_path):
    layout = make_layout(SynthConfig(width=2048, height=2048, seed=40))
    path = tmp_path / "fig.png"
    Image.fromarray(render_region(layout, (256, 256, 600, 400), mpp=0.5)).save(path)
    r = estimate(path, model_dir, mode="center")
    assert r["method"] in ("physical+fusion", "physical", "fusion") and r["n_tiles"] == 1
    assert set(r) >= {"direct", "area", "fusion", "baseline", "physical", "region_boxes"}
    assert r["magnification"] in MAGNIFICATIONS
    assert r["tta"] is True


def test_predictions_with_tta_do_not_depend_on_patch_orientation(model_dir, dataset):
    model, ds = load_model(model_dir), open_dataset(dataset)
    p = np.asarray(ds.images[ds.indices("test")[:4]])
    turned = np.ascontiguousarray(np.rot90(p, 1, axes=(1, 2))[:, ::-1])
    a = predict_patches(p, model, baseline=False)
    b = predict_patches(turned, model, baseline=False)
    plain = predict_patches(p, model, baseline=False, tta=False)
    np.testing.assert_allclose(a["direct"], b["direct"], rtol=1e-4)
    np.testing.assert_allclose(a["area_px"], b["area_px"], rtol=1e-4)
    assert not np.allclose(a["direct"], plain["direct"], rtol=1e-4)


def test_suggest_mpp_for_a_tiff_without_resolution(tmp_path):
    from magnipath._errors import SlideError
    from magnipath.slide import open_slide

    layout = make_layout(SynthConfig(width=2048, height=2048, seed=40))
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, render_region(layout, (256, 256, 1024, 1024)), tile=(256, 256))
    with pytest.raises(SlideError):
        open_slide(path)
    mpp, details = suggest_mpp(path, n_tiles=6)
    assert details["is_estimate"] is True and details["source"] == "estimate"
    assert details["file_mpp"] is None and details["n_regions"] == 1
    assert mpp == pytest.approx(10 / details["magnification_continuous"])
    assert mpp <= 0.5  # the scan is 40x (0.25 µm/px): not mistaken for 10x or 5x


@pytest.mark.slow
def test_densenet_trains_and_reloads(dataset, tmp_path):
    cfg = MagTrainConfig(arch="densenet121", epochs=1, batch_size=2, max_steps_per_epoch=2,
                         head_samples=8, device="cpu")
    train(dataset, tmp_path / "d", cfg)
    model = load_model(tmp_path / "d")
    pred = predict_patches(np.asarray(open_dataset(dataset).images[:2]), model, baseline=False)
    assert np.isfinite(pred["fusion"]).all()


def test_the_model_is_combined_with_the_physical_estimate_only_where_they_agree(model_dir):
    from skimage import data

    r = estimate(data.immunohistochemistry(), model_dir)
    phys = r["physical"]["magnification"]
    cnn = r["fusion"]["magnification"]
    assert phys is not None
    ratio = max(phys / cnn, cnn / phys) if cnn > 0 else float("inf")  # a tiny model: any value
    if r["method"] == "physical+fusion":
        assert ratio <= 1.25 and "disagreement" not in r
        assert r["magnification_continuous"] == pytest.approx((phys * cnn) ** 0.5)
    else:
        assert r["method"] == "physical" and ratio > 1.25
        assert r["disagreement"]["fusion"] == pytest.approx(cnn)
        assert r["magnification_continuous"] == pytest.approx(phys)
    assert r["mpp_estimate"] == pytest.approx(10 / r["magnification_continuous"])
