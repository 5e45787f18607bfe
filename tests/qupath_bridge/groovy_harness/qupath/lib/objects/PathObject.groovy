// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class PathObject {
    String type
    Roi roi
    Map pathClass
    String name
    List color
    MeasurementList measurements = new MeasurementList()
    Map<String, String> metadata = null
    UUID id = UUID.randomUUID()

    boolean isAnnotation() { type == "annotation" }
    boolean isDetection() { type != "annotation" }
    Roi getROI() { roi }
    Map getPathClass() { pathClass }
    String getName() { name }
    void setName(String n) { name = n }
    List getColor() { color }
    void setColor(List c) { color = c }
    UUID getID() { id }
    void refreshID() { id = UUID.randomUUID() }
    boolean hasMeasurements() { !measurements.isEmpty() }
    MeasurementList getMeasurementList() { measurements }
    Map<String, String> getMetadata() {
        if (isDetection() && Flavour.version == "0.5") {
            def m = new ReadOnlyMap()
            if (metadata) metadata.each { k, v -> m.putAt(k, v) }  // putAt bypasses put()
            return m
        }
        if (metadata == null) metadata = new LinkedHashMap<String, String>()
        return metadata
    }
    // hasMetadata() exists on QuPath 0.6 only: run_script.groovy adds it there
}
