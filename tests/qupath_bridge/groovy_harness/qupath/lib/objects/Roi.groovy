// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class Roi {
    Map geometry
    boolean isPoint() { geometry.type in ["Point", "MultiPoint"] }
}
