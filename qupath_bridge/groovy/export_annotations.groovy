/**
 * MagniPath: export the current image's annotations as QuPath GeoJSON.
 *
 * Run it for every image of a project:
 *   Automate > Script editor, open this file, then Run > Run for project
 *   (choose the images; one file per image is written).
 * "Run" exports the image that is open only.
 *
 * Writes <project>/magnipath/annotations/<image name>.geojson, a FeatureCollection in
 * level-0 pixel coordinates, the input MagniPath's tiling reads. In the file name the
 * characters \ / : * ? " < > | and control characters become "_" (MagniPath's Python
 * side uses the same rule). Point annotations are included; objects MagniPath wrote are
 * left out unless INCLUDE_PREDICTIONS is true. MagniPath's objects: UUID listed in
 * <project>/magnipath/objects/<entry id>.json, or the measurement "MagniPath prediction",
 * or (written by earlier versions) the object metadata "magnipath".
 *
 * Written for QuPath 0.4, 0.5 and 0.6. Changes nothing in the project's data.
 */

import qupath.lib.io.GsonTools

// ---- settings -----------------------------------------------------------------------
boolean INCLUDE_PREDICTIONS = false   // also export objects MagniPath wrote
boolean INCLUDE_POINTS = true         // point annotations (e.g. mitosis clicks)
String MARK_KEY = "magnipath"         // earlier object metadata mark of MagniPath's objects
String MARK_MEASUREMENT = "MagniPath prediction"   // measurement on MagniPath's objects
// -------------------------------------------------------------------------------------

if (getProject() == null) {
    println "MagniPath: open a project first (File > Project...)"
    return
}

// UUIDs of MagniPath's last write into this image (absent or unreadable: none)
def recordIds = [] as Set
def entryId = getProjectEntry()?.getID()
def recordFile = entryId == null ? null :
        new File(buildFilePath(PROJECT_BASE_DIR, "magnipath", "objects", entryId + ".json"))
if (recordFile != null && recordFile.isFile()) {
    try {
        def ids = GsonTools.getInstance().fromJson(recordFile.getText("UTF-8"), Map.class)?.get("ids") ?: []
        recordIds = ids.collect { it.toString() } as Set
    } catch (Exception e) {
        println "MagniPath: cannot read ${recordFile} (${e}); using the marks only"
    }
}

def isMagniPath = { obj ->
    if (recordIds.contains(obj.getID().toString()))
        return true
    if (obj.hasMeasurements() && obj.getMeasurementList().containsKey(MARK_MEASUREMENT))
        return true
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
def imageName = getProjectEntry()?.getImageName() ?: getCurrentImageName()
def safeName = imageName.replaceAll('[\\\\/:*?"<>|\\p{Cntrl}]', '_').trim()
if (safeName.isEmpty() || safeName == "." || safeName == "..")
    safeName = "_"

def outDir = buildFilePath(PROJECT_BASE_DIR, "magnipath", "annotations")
mkdirs(outDir)
def outPath = buildFilePath(outDir, safeName + ".geojson")

def annotations = getAnnotationObjects().findAll { obj ->
    (INCLUDE_PREDICTIONS || !isMagniPath(obj)) &&
            (INCLUDE_POINTS || obj.getROI() == null || !obj.getROI().isPoint())
}
exportObjectsToGeoJson(annotations, outPath, "FEATURE_COLLECTION")
println "MagniPath: '${imageName}': ${annotations.size()} annotations -> ${outPath}"
