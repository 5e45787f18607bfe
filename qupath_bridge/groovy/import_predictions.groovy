/**
 * MagniPath: import MagniPath's predictions into the current image.
 *
 * Run it for every image of a project:
 *   Automate > Script editor, open this file, then Run > Run for project
 *   (choose the images; "Run for project" saves each image, the "(without save)"
 *   variant does not).
 * "Run" imports into the image that is open only; then save it (File > Save).
 *
 * Reads <project>/magnipath/predictions/<image name>.geojson (QuPath GeoJSON, level-0
 * pixels; same file-name rule as the export script). Images without such a file are
 * left alone. The objects MagniPath imported before (object metadata "magnipath") are
 * removed first; every other object stays as it was (children of removed objects are
 * kept). New objects are marked with metadata magnipath=prediction, so the next run
 * replaces them again. To keep a prediction for good, remove its mark, e.g. with
 * getSelectedObject().getMetadata().remove("magnipath").
 *
 * Written for QuPath 0.5 and 0.6.
 */

import qupath.lib.io.PathIO
import qupath.lib.objects.PathObjects

// ---- settings -----------------------------------------------------------------------
String FORCE_TYPE = null          // null: keep the file's objectType; or "annotation" / "detection"
String MARK_KEY = "magnipath"
String MARK_VALUE = "prediction"
// -------------------------------------------------------------------------------------

def isMagniPath = { obj ->
    // QuPath 0.6: hasMetadata() avoids creating empty metadata maps; 0.5 lacks it
    if (obj.metaClass.respondsTo(obj, "hasMetadata") && !obj.hasMetadata())
        return false
    return obj.getMetadata().get(MARK_KEY) != null
}

def convert = { obj ->
    // re-create obj as the requested type, keeping class, name, colour, measurements, metadata
    boolean wantDetection = FORCE_TYPE == "detection"
    if (FORCE_TYPE == null || obj.isDetection() == wantDetection)
        return obj
    def measurements = obj.getMeasurementList()   // obj is discarded: its list moves over
    def copy = wantDetection ?
            PathObjects.createDetectionObject(obj.getROI(), obj.getPathClass(), measurements) :
            PathObjects.createAnnotationObject(obj.getROI(), obj.getPathClass(), measurements)
    copy.setName(obj.getName())
    copy.setColor(obj.getColor())
    obj.getMetadata().each { k, v -> copy.getMetadata().put(k, v) }
    return copy
}

if (getProject() == null || getProjectEntry() == null) {
    println "MagniPath: open an image of a project first"
    return
}
def imageName = getProjectEntry().getImageName()
def safeName = imageName.replaceAll('[\\\\/:*?"<>|\\p{Cntrl}]', '_').trim()
if (safeName.isEmpty() || safeName == "." || safeName == "..")
    safeName = "_"
def file = new File(buildFilePath(PROJECT_BASE_DIR, "magnipath", "predictions", safeName + ".geojson"))
if (!file.isFile()) {
    println "MagniPath: '${imageName}': no predictions at ${file}, nothing changed"
    return
}

def objects = PathIO.readObjects(file).collect { convert(it) }
objects.each { it.getMetadata().put(MARK_KEY, MARK_VALUE) }

def hierarchy = getCurrentHierarchy()
def previous = hierarchy.getAllObjects(false).findAll { isMagniPath(it) }
hierarchy.removeObjects(previous, true)   // true: keep their children (user objects)
hierarchy.addObjects(objects)
fireHierarchyUpdate()
println "MagniPath: '${imageName}': removed ${previous.size()} earlier MagniPath objects, " +
        "added ${objects.size()} from ${file}"
