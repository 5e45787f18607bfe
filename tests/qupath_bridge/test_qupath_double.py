"""The QuPath test double (tests/_qupath_double) behaves like the QuPath it imitates.

These pin the behaviours MagniPath depends on, each seen in QuPath's source (tags
v0.5.1 / v0.6.0) and in runs against real QuPath 0.5.1 / 0.6.0 (issue 13).
"""

from __future__ import annotations

import json
import logging

import pytest
import shapely
from _qupath_double import QPDATA_MAGIC, installed, namespace
from _qupath_double import _java as jv
from shapely.geometry import Polygon, shape

# a square with a hole, both rings counter-clockwise (in x-right / y-up terms)
RING = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])


def _feature(object_type: str, **props) -> dict:
    return {"type": "Feature", "id": "00000000-0000-0000-0000-000000000007",
            "geometry": shapely.geometry.mapping(RING),
            "properties": {"objectType": object_type, **props}}


def _read(ns, tmp_path, feats):
    f = tmp_path / "in.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return list(ns.PathIO.readObjects(ns.File(str(f))))


@pytest.mark.parametrize("flavour", ["0.4", "0.5", "0.6"])
def test_detection_metadata(flavour, tmp_path, caplog):
    ns = namespace(flavour)
    with caplog.at_level(logging.WARNING, "qupath.double"):
        det, ann = _read(ns, tmp_path, [_feature("detection", metadata={"k": "v"}),
                                        _feature("annotation", metadata={"k": "v"})])
    if flavour == "0.4":  # getMetadata() protected; GeoJSON metadata only for TMA cores
        assert getattr(det, "getMetadata", None) is None
        assert getattr(ann, "getMetadata", None) is None
        assert "metadata" not in json.loads(str(ns.GsonTools.getInstance().toJson([ann])))[0][
            "properties"]
        assert det.getMeasurementList().get("x") != det.getMeasurementList().get("x")  # NaN
        return
    assert ann.getMetadata().get("k") == "v"  # annotations keep metadata from 0.5
    if flavour == "0.5":  # PathDetectionObject.getMetadata(): unmodifiable since v0.5.0
        assert det.getMetadata().get("k") is None
        assert "Exception setting metadata values" in caplog.text
        with pytest.raises(jv.UnsupportedOperationException) as e:
            det.getMetadata().put("magnipath", "prediction")
        assert type(e.value).__name__ == "java.lang.UnsupportedOperationException"
        assert getattr(det, "hasMetadata", None) is None  # added in 0.6
    else:
        assert det.getMetadata().get("k") == "v" and det.hasMetadata()
        det.getMetadata().put("magnipath", "prediction")


@pytest.mark.parametrize("flavour", ["0.5", "0.6"])
def test_ring_orientation_of_the_geojson_export(flavour, tmp_path):
    ns = namespace(flavour)
    (obj,) = _read(ns, tmp_path, [_feature("annotation")])
    (feat,) = json.loads(str(ns.GsonTools.getInstance().toJson([obj])))
    got = shape(feat["geometry"])
    assert got.equals(RING)
    shell_ccw = got.exterior.is_ccw
    if flavour == "0.6":  # GeometryTools.roiToGeometry: normalised since v0.6.0 (JTS norm())
        assert not shell_ccw and got.interiors[0].is_ccw
        assert got.equals_exact(shapely.normalize(RING), 0)
    else:
        assert shell_ccw  # as given


def test_save_image_data_keeps_a_bkp_only_while_writing(tmp_path, make_slide):
    """DefaultProject.saveImageData: data.qpdata -> data.qpdata.bkp, new file in place."""
    slide = make_slide("s.ome.tif", 300, 200, 0.5)
    with installed("0.6") as ns:
        qp = ns.QuPathProject(tmp_path / "p" / "project.qpproj", mode="x")
        qp.save(images=False)
        (entry,) = qp.add_image(slide, return_list=True)
        folder = tmp_path / "p" / "data" / entry.entry_id
        assert {p.name for p in folder.iterdir()} >= {"data.qpdata", "server.json",
                                                      "summary.json", "thumbnail.jpg"}
        assert (tmp_path / "p" / "project.qpproj").is_file()
        qp.save(images=False)
        assert (tmp_path / "p" / "project.qpproj.backup").is_file()
        old = (folder / "data.qpdata").read_bytes()
        assert old.startswith(QPDATA_MAGIC)

        seen = []

        def crash(java_entry, data_path):
            seen.append(sorted(p.name for p in data_path.parent.iterdir()))
            raise OSError("disk full")

        ns.hooks["before_save_image_data"] = crash
        image_data = entry.java_object.readImageData()
        with pytest.raises(OSError, match="disk full"):
            entry.java_object.saveImageData(image_data)
        assert "data.qpdata.bkp" in seen[0] and "data.qpdata" not in seen[0]
        assert (folder / "data.qpdata").read_bytes() == old  # moved back on the error
        assert not (folder / "data.qpdata.bkp").exists()

        (folder / "data.qpdata").write_bytes(old[:-7])  # truncated
        with pytest.raises(jv.IOException):
            entry.java_object.readHierarchy()
        assert entry.java_object.readImageData().getHierarchy().getAllObjects(False) == []
