// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class PathObjects {
    static PathObject createDetectionObject(Roi roi, Map pc, MeasurementList ml) {
        new PathObject(type: "detection", roi: roi, pathClass: pc, measurements: ml ?: new MeasurementList())
    }
    static PathObject createAnnotationObject(Roi roi, Map pc, MeasurementList ml) {
        new PathObject(type: "annotation", roi: roi, pathClass: pc, measurements: ml ?: new MeasurementList())
    }
}
