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
 * left alone. MagniPath's earlier objects are removed first: those whose UUID is listed
 * in <project>/magnipath/objects/<entry id>.json, those with the measurement
 * "MagniPath prediction", and those with the object metadata "magnipath" (earlier
 * versions); every other object stays as it was (children of removed objects are kept).
 * New objects get the measurement "MagniPath prediction" = 1 (annotations also the
 * metadata magnipath=prediction; QuPath 0.5 keeps no metadata on detections) and their
 * UUIDs are recorded, so the next run replaces them again. To keep a prediction for
 * good: duplicate it (Objects > Duplicate...), then remove the copy's measurement
 * "MagniPath prediction" (and its metadata "magnipath").
 *
 * Written for QuPath 0.4, 0.5 and 0.6.
 */

import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.time.LocalDateTime
import qupath.lib.io.GsonTools
import qupath.lib.io.PathIO
import qupath.lib.objects.PathObjects

// ---- settings -----------------------------------------------------------------------
String FORCE_TYPE = null          // null: keep the file's objectType; or "annotation" / "detection"
String MARK_KEY = "magnipath"
String MARK_VALUE = "prediction"
String MARK_MEASUREMENT = "MagniPath prediction"
// -------------------------------------------------------------------------------------

def hasMetadataMark = { obj ->
    // QuPath 0.6: hasMetadata() avoids creating empty metadata maps; 0.5 lacks it;
    // 0.4 has no public getMetadata() (no object carries the metadata mark there)
    try {
        if (obj.metaClass.respondsTo(obj, "hasMetadata") && !obj.hasMetadata())
            return false
        return obj.getMetadata().get(MARK_KEY) != null
    } catch (Exception e) {
        return false
    }
}

def putMetadata = { obj, key, value ->
    // detections' metadata are read-only on QuPath 0.5 (UnsupportedOperationException)
    try {
        obj.getMetadata().put(key, value)
        return true
    } catch (Exception e) {
        return false
    }
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
    try {
        obj.getMetadata().each { k, v -> putMetadata(copy, k, v) }
    } catch (Exception e) {
        // QuPath 0.4: no public metadata
    }
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

// the UUIDs of MagniPath's last write into this image (absent or unreadable: none)
def entryId = getProjectEntry().getID()
def recordFile = new File(buildFilePath(PROJECT_BASE_DIR, "magnipath", "objects", entryId + ".json"))
def recordIds = [] as Set
if (recordFile.isFile()) {
    try {
        def ids = GsonTools.getInstance().fromJson(recordFile.getText("UTF-8"), Map.class)?.get("ids") ?: []
        recordIds = ids.collect { it.toString() } as Set
    } catch (Exception e) {
        println "MagniPath: cannot read ${recordFile} (${e}); using the marks only"
    }
}
def isMagniPath = { obj ->
    recordIds.contains(obj.getID().toString()) ||
            (obj.hasMeasurements() && obj.getMeasurementList().containsKey(MARK_MEASUREMENT)) ||
            hasMetadataMark(obj)
}

def hierarchy = getCurrentHierarchy()
def previous = hierarchy.getAllObjects(false).findAll { isMagniPath(it) }
def kept = hierarchy.getAllObjects(false).findAll { !isMagniPath(it) }
def keptIds = kept.collect { it.getID().toString() } as Set

def objects = PathIO.readObjects(file).collect { convert(it) }
objects.each { obj ->
    def ml = obj.getMeasurementList()
    ml.put(MARK_MEASUREMENT, 1.0d)
    ml.close()
    if (obj.isAnnotation())
        putMetadata(obj, MARK_KEY, MARK_VALUE)
    if (keptIds.contains(obj.getID().toString()))
        obj.refreshID()   // never reuse a UUID of an object that stays (the user's)
}

hierarchy.removeObjects(previous, true)   // true: keep their children (user objects)
hierarchy.addObjects(objects)
fireHierarchyUpdate()

// record the new objects' UUIDs (temporary file, then rename)
recordFile.getParentFile().mkdirs()
def tmpRecord = new File(recordFile.getParentFile(), "." + recordFile.getName() + ".groovy.tmp")
tmpRecord.setText(GsonTools.getInstance().toJson([
        format  : "magnipath-objects/1", image: imageName, entry_id: entryId.toString(),
        written : LocalDateTime.now().withNano(0).toString(),
        ids     : objects.collect { it.getID().toString() }.sort()]), "UTF-8")
Files.move(tmpRecord.toPath(), recordFile.toPath(), StandardCopyOption.REPLACE_EXISTING)
println "MagniPath: '${imageName}': removed ${previous.size()} earlier MagniPath objects, " +
        "added ${objects.size()} from ${file}"
