// Stand-ins for QuPath classes the Groovy scripts call (0.5-like or 0.6-like;
// tests/_qupath_double documents the QuPath behaviour each imitates).
package qupath.lib.objects

class Hierarchy {
    List<PathObject> objects = []
    List<PathObject> getAllObjects(boolean includeRoot) { new ArrayList(objects) }
    void removeObjects(Collection<PathObject> objs, boolean keepChildren) { objects.removeAll(objs) }
    void addObjects(Collection<PathObject> objs) { objects.addAll(objs) }
}
