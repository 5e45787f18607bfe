// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class ReadOnlyMap extends LinkedHashMap<String, String> {
    // Collections.unmodifiableMap: QuPath 0.5's PathDetectionObject.getMetadata()
    String put(String k, String v) { throw new UnsupportedOperationException() }
    String remove(Object k) { throw new UnsupportedOperationException() }
}
