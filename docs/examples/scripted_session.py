"""A whole MagniPath session in napari, from a script.

Open the synthetic sample slide with its ground truth, tile it, train a small
model, run it over the slide, save the predicted objects as QuPath GeoJSON and,
where QuPath is installed and a project is given, push them into that project.
Every step is one call of ``magnipath._napari.api`` and returns the layers it
adds (or the core's summary).

    python docs/examples/scripted_session.py --out session/            # opens napari
    python docs/examples/scripted_session.py --out session/ --quick --no-show   # headless

``--quick`` keeps it to seconds on a laptop CPU (2.5x, tiny model, one
epoch); without it the model trains at 10x for a few minutes and starts to
find the classes. ``--no-show`` needs no display at all: the layers then go
into napari's window-less ``ViewerModel`` (same layers, same calls).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari

from magnipath._napari import api


def main(out: Path, *, quick: bool = False, show: bool = True, viewer=None,
         project: Path | None = None) -> dict:
    """Run the session into ``out``; return the layers and summaries it made."""
    out = Path(out)
    if viewer is None:
        viewer = napari.Viewer() if show else napari.components.ViewerModel()
    # 1. the sample slide (4096 x 4096 px at 0.25 µm/px) and its ground truth
    slide, truth, *_ = api.open_sample(viewer)
    # 2. tile it: 64 px tiles at 2.5x (quick) or 128 px at 10x, ground-truth labels
    tiles = api.tile(slide, truth, out / "dataset",
                     magnification=2.5 if quick else 10.0, tile_size=64 if quick else 128,
                     min_tissue=0.0)
    # 3. train a DSMN-S2 (a U-Net at half width; Ho et al.) on them
    settings = (dict(epochs=1, max_steps_per_epoch=2, arch_kwargs={"base": 4}, batch_size=4)
                if quick else dict(epochs=10, arch_kwargs={"base": 8}, batch_size=8))
    model = api.train(out / "dataset", out / "model", arch="dsmn-s2", lr=1e-3,
                      overwrite=True, **settings)
    # 4. run it over the slide: a lazy label map and the predicted objects
    labels, objects = api.infer(slide, out / "model", viewer=viewer,
                                out_dir=out / "predictions", overwrite=True)
    # 5. the objects as QuPath GeoJSON (File > Import objects in QuPath) ...
    geojson = api.save_geojson(objects, out / "predictions.geojson", image=slide)
    pushed = None
    # 6. ... or straight into a QuPath project that holds this slide
    if project is not None and api.qupath_available()[0]:
        pushed = api.push_to_qupath(objects, project, slide=slide, as_type="detection")
    return {"viewer": viewer, "slide": slide, "truth": truth, "labels": labels,
            "objects": objects, "tiles": tiles, "model": model, "geojson": geojson,
            "pushed": pushed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("magnipath-session"),
                        help="folder for the dataset, model and predictions")
    parser.add_argument("--quick", action="store_true", help="seconds instead of minutes")
    parser.add_argument("--no-show", action="store_true", help="no window (headless)")
    parser.add_argument("--project", type=Path, help="QuPath project to push predictions into")
    args = parser.parse_args()
    result = main(args.out, quick=args.quick, show=not args.no_show, project=args.project)
    print(f"{result['tiles']['n_tiles']} tiles, model in {result['model']['model_dir']}, "
          f"{len(result['objects'].data)} predicted objects in {result['geojson']}")
    if not args.no_show:
        napari.run()
