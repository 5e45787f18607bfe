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
 * side uses the same rule). Point annotations are included; objects MagniPath wrote
 * (object metadata "magnipath") are left out unless INCLUDE_PREDICTIONS is true.
 *
 * Written for QuPath 0.5 and 0.6. Changes nothing in the project's data.
 */

// ---- settings -----------------------------------------------------------------------
boolean INCLUDE_PREDICTIONS = false   // also export objects MagniPath wrote
boolean INCLUDE_POINTS = true         // point annotations (e.g. mitosis clicks)
String MARK_KEY = "magnipath"         // object metadata key of MagniPath's objects
// -------------------------------------------------------------------------------------

def isMagniPath = { obj ->
    // QuPath 0.6: hasMetadata() avoids creating empty metadata maps; 0.5 lacks it
    if (obj.metaClass.respondsTo(obj, "hasMetadata") && !obj.hasMetadata())
        return false
    return obj.getMetadata().get(MARK_KEY) != null
}

if (getProject() == null) {
    println "MagniPath: open a project first (File > Project...)"
    return
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
