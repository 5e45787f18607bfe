"""Predict one region of a slide with a trained model and save the objects as QuPath GeoJSON.

    python docs/examples/predict_region.py SLIDE MODEL_DIR --region 2048,1024,4096,4096 \
        --out region.geojson [--annotations SLIDE.geojson] [--no-show]

The region is ``x,y,width,height`` in level-0 pixels of the slide (QuPath's
frame; whole slide when left out). With a window, the slide, its annotations,
the label map and the objects stay open in napari; ``--no-show`` needs no
display (napari's window-less ViewerModel).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari

from magnipath._napari import api


def main(slide: Path, model: Path, out: Path, *, region=None, annotations=(),
         show: bool = True, device: str = "auto", predictions: Path | None = None) -> dict:
    """Open, predict ``region`` (level-0 box or None), save; return the layers and the file."""
    viewer = napari.Viewer() if show else napari.components.ViewerModel()
    image, *annotation_layers = api.open_slide_in_viewer(slide, viewer, annotations=annotations)
    labels, objects = api.infer(image, model, viewer=viewer, region=region, device=device,
                                out_dir=predictions)
    geojson = api.save_geojson(objects, out, image=image)
    return {"viewer": viewer, "image": image, "annotations": annotation_layers,
            "labels": labels, "objects": objects, "geojson": geojson}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slide", type=Path, help="the slide")
    parser.add_argument("model", type=Path, help="a model folder (magnipath train)")
    parser.add_argument("--region", help="x,y,width,height in level-0 pixels")
    parser.add_argument("--annotations", type=Path, nargs="*", default=[],
                        help="QuPath GeoJSON files of the slide to show")
    parser.add_argument("--out", type=Path, required=True, help="GeoJSON file to write")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--no-show", action="store_true", help="no window")
    args = parser.parse_args()
    box = tuple(int(v) for v in args.region.split(",")) if args.region else None
    res = main(args.slide, args.model, args.out, region=box, annotations=args.annotations,
               show=not args.no_show, device=args.device)
    print(f"{len(set(res['objects'].features['object_id']))} objects written to {res['geojson']}")
    if not args.no_show:
        napari.run()
