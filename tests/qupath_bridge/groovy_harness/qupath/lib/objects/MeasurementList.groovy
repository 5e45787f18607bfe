// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class MeasurementList extends LinkedHashMap<String, Double> {
    void put(String k, double v) { super.put(k, v) }
    boolean containsKey(String k) { super.containsKey(k) }
    void close() {}
}
