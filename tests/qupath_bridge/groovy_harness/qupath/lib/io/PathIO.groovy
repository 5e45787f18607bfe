package qupath.lib.io

import groovy.json.JsonSlurper
import qupath.lib.objects.*

class PathIO {
    // PathIO.readObjects: metadata put inside a try; on 0.5 detections it is dropped
    static List<PathObject> readObjects(File file) {
        def data = new JsonSlurper().parse(file)
        def feats = data instanceof Map ? (data.features ?: [data]) : data
        feats.collect { f -> fromFeature(f) }
    }

    static PathObject fromFeature(Map f) {
        def p = f.properties ?: [:]
        def o = new PathObject(type: p.objectType ?: "annotation", roi: new Roi(geometry: f.geometry),
                pathClass: p.classification, name: p.name, color: p.color)
        if (f.id) o.id = UUID.fromString(f.id)
        (p.measurements ?: [:]).each { k, v -> o.measurements.put(k, v as double) }
        if (p.metadata) {
            try {
                p.metadata.each { k, v -> o.getMetadata().put(k, v.toString()) }
            } catch (UnsupportedOperationException e) {
                System.err.println("WARN Exception setting metadata values")
            }
        }
        return o
    }

    static Map toFeature(PathObject o) {
        def props = [objectType: o.type, name: o.name, classification: o.pathClass,
                     measurements: new LinkedHashMap(o.measurements)]
        if (o.metadata) props.metadata = new LinkedHashMap(o.metadata)
        [type: "Feature", id: o.id.toString(), geometry: o.roi.geometry, properties: props]
    }
}
