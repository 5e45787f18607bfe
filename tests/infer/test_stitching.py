"""The stitched label map is exactly what the model says, pixel by pixel, borders included."""

from __future__ import annotations

import numpy as np
import pytest

from magnipath.geometry import TileGeometry
from magnipath.infer import InferConfig, infer_slide, open_prediction
from magnipath.slide import open_slide
from magnipath.tissue import detect_tissue

from .conftest import (
    DARK,
    GLASS,
    INTENSITY_CLASSES,
    ConstantNet,
    IntensityNet,
    intensity_classes,
    make_card,
)


def _labels(res) -> np.ndarray:
    root, _ = open_prediction(res.store)
    return np.asarray(root["labels/0"][:])


def test_label_map_equals_the_model_applied_to_the_whole_region(infer_slide_file, tmp_path,
                                                                intensity_model):
    # a region that runs 100 px past the right edge and 60 px past the bottom of the slide
    region = (100.0, 60.0, 2100.0, 600.0)
    res = infer_slide(infer_slide_file.slide, intensity_model, tmp_path,
                      InferConfig(tissue_mask=False, region=region, batch_size=5, chunk=64))
    labels = _labels(res)
    assert res.out_shape == (300, 1050) == labels.shape  # 1 µm/px from 0.5 µm/px: d = 2
    assert res.downsample == 2.0 and res.origin == (100.0, 60.0)
    with open_slide(infer_slide_file.slide) as s:
        whole = s.read_region(region, mpp=1.0, out_shape=labels.shape)
    expected = intensity_classes(whole)
    np.testing.assert_array_equal(labels, expected)
    # beyond the slide the inputs are zero-padded (black): label pixels from x = 100 + 2c >= 2100
    assert (labels[:, 1000:] == DARK).all() and (labels[270:, :] == DARK).all()
    assert (labels[:270, :1000] != DARK).mean() > 0.9  # the slide itself is mostly not black


def test_tissue_free_windows_get_the_background_class(infer_slide_file, tmp_path,
                                                      intensity_model):
    net, card = intensity_model
    res = infer_slide(infer_slide_file.slide, (net, card), tmp_path,
                      InferConfig(tissue_mask=True, chunk=128))
    labels = _labels(res)
    with open_slide(infer_slide_file.slide) as s:
        expected = intensity_classes(s.read_region((0, 0, 2100, 600), mpp=1.0,
                                                   out_shape=labels.shape))
        mask = detect_tissue(s)
    size = 32
    n_kept = n_skipped = 0
    for r in range(0, labels.shape[0], size):
        for c in range(0, labels.shape[1], size):
            frac = mask.fraction((2 * c, 2 * r, 2 * size, 2 * size))
            got = labels[r:r + size, c:c + size]
            if frac > 0:
                n_kept += 1
                np.testing.assert_array_equal(got, expected[r:r + size, c:c + size])
            else:
                n_skipped += 1
                assert (got == GLASS).all()  # 'Background' is the fill class
    assert n_skipped == res.n_skipped > 0 and n_kept > 0
    assert res.n_windows == n_kept + n_skipped == res.windows_run + res.n_skipped


def test_without_a_background_class_skipped_windows_get_the_ignore_index(infer_slide_file,
                                                                         tmp_path):
    from magnipath.classes import ClassMap

    classes = ClassMap.from_names(["Stroma", "Tumour"])
    card = make_card(classes, TileGeometry.single(1.0, 32))
    res = infer_slide(infer_slide_file.slide, (ConstantNet([0.0, 1.0]), card), tmp_path)
    labels = _labels(res)
    assert res.n_skipped > 0
    assert set(np.unique(labels).tolist()) == {1, classes.ignore_index}
    assert (labels == classes.ignore_index).sum() >= res.n_skipped * 32 * 32 * 0.5


def test_overlapping_windows_blend_without_seams(infer_slide_file, tmp_path):
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(1.0, 32))
    logits = [0.2, 1.0, -0.5]
    res = infer_slide(infer_slide_file.slide, (ConstantNet(logits), card), tmp_path,
                      InferConfig(stride=12, tissue_mask=False, probabilities=True, chunk=100,
                                  region=(0.0, 0.0, 600.0, 400.0)))
    root, _ = open_prediction(res.store)
    probs = np.asarray(root["probabilities/0"][:])
    p = np.exp(logits) / np.exp(logits).sum()
    for k in range(3):  # one value everywhere: no seam at window or chunk edges
        assert np.unique(probs[k]).tolist() == [round(p[k] * 255)]
    assert (np.asarray(root["labels/0"][:]) == 1).all()


def test_overlap_gives_the_same_labels_as_no_overlap_for_a_pointwise_model(infer_slide_file,
                                                                          tmp_path,
                                                                          intensity_model):
    cfg = {"tissue_mask": False, "region": (300.0, 0.0, 900.0, 500.0)}
    a = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "a", InferConfig(**cfg))
    b = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "b",
                    InferConfig(stride=10, chunk=64, **cfg))
    assert b.windows_run > a.windows_run
    np.testing.assert_array_equal(_labels(a), _labels(b))


def test_context_inputs_are_concentric_and_zero_padded(infer_slide_file, tmp_path):
    net = IntensityNet(n_inputs=3)
    net.record = True
    geometry = TileGeometry.dmmn(mpp=1.0, size=32)  # 10x target, 5x and 2.5x context
    card = make_card(INTENSITY_CLASSES, geometry)
    infer_slide(infer_slide_file.slide, (net, card), tmp_path,
                InferConfig(tissue_mask=False, batch_size=1, region=(0, 0, 512, 512)))
    mean = net.mean.numpy()[0]
    std = net.std.numpy()[0]

    def rgb(x):  # (3, S, S) normalised -> (S, S, 3) 0..255
        return ((x.numpy() * std + mean) / net.scale).transpose(1, 2, 0)

    def block_mean(a, k):
        s = a.shape[0] // k
        return a.reshape(s, k, s, k, 3).mean(axis=(1, 3))

    first = [rgb(x[0]) for x in net.seen[0]]  # window (0, 0)
    # the 2.5x context covers 4x the target's field, centred: the 12 px band top and left
    # of the slide corner lies outside the slide and is black
    assert np.abs(first[2][:12, :, :]).max() < 1e-3 and np.abs(first[2][:, :12]).max() < 1e-3
    inner = [rgb(x[0]) for x in net.seen[9]]  # window (32, 32): its target inside the slide
    assert np.abs(inner[1][8:24, 8:24] - block_mean(inner[0], 2)).max() <= 1.0 + 1e-3
    assert np.abs(inner[2][12:20, 12:20] - block_mean(inner[0], 4)).max() <= 1.0 + 1e-3


@pytest.mark.parametrize("workers", [1, 3])
def test_result_does_not_depend_on_batch_size_or_reader_threads(infer_slide_file, tmp_path,
                                                                intensity_model, workers):
    region = (0.0, 0.0, 800.0, 400.0)
    a = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "a",
                    InferConfig(region=region, batch_size=1, workers=workers))
    b = infer_slide(infer_slide_file.slide, intensity_model, tmp_path / "b",
                    InferConfig(region=region, batch_size=7, workers=workers))
    np.testing.assert_array_equal(_labels(a), _labels(b))


def test_overlap_blending_matches_a_brute_force_in_memory_blend(infer_slide_file, tmp_path):
    from magnipath.infer import blend_weights, plan_windows

    from .conftest import WindowMeanNet

    size, stride, region = 32, 16, (400.0, 96.0, 800.0, 384.0)
    card = make_card(INTENSITY_CLASSES, TileGeometry.single(1.0, size))
    res = infer_slide(infer_slide_file.slide, (WindowMeanNet(), card), tmp_path,
                      InferConfig(stride=stride, tissue_mask=False, probabilities=True,
                                  chunk=40, region=region))  # windows straddle chunks
    root, _ = open_prediction(res.store)
    labels, probs = np.asarray(root["labels/0"][:]), np.asarray(root["probabilities/0"][:])
    # reference: every window once, blended in one in-memory canvas (float64)
    h, w = res.out_shape
    plan = plan_windows((h, w), size, stride)
    with open_slide(infer_slide_file.slide) as s:
        means = [s.read_region((400.0 + 2.0 * c, 96.0 + 2.0 * r, 2.0 * size, 2.0 * size), mpp=1.0,
                               out_shape=(size, size)).astype(np.float64).mean()
                 for r, c in plan.windows]
    lg = WindowMeanNet.logits_of(means)
    p = np.exp(lg - lg.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)

    def blend(weight):
        acc = np.zeros((3, h + size, w + size))
        wsum = np.zeros((h + size, w + size))
        for (r, c), pk in zip(plan.windows, p, strict=True):
            acc[:, r:r + size, c:c + size] += pk[:, None, None] * weight
            wsum[r:r + size, c:c + size] += weight
        return acc[:, :h, :w] / wsum[:h, :w]

    ref = blend(blend_weights(size, stride).astype(np.float64))
    assert np.abs(probs.astype(np.float64) - ref * 255).max() <= 0.51
    top2 = np.sort(ref, axis=0)[-2:]
    sure = (top2[1] - top2[0]) > 1e-4
    np.testing.assert_array_equal(labels[sure], ref.argmax(0)[sure])
    assert len(np.unique(labels)) > 1
    # the setting is sensitive to the weighting: a plain mean would differ visibly
    assert np.abs(blend(np.ones((size, size))) - ref).max() * 255 > 2
