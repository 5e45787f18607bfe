// Runs a MagniPath Groovy script as QuPath's "Run" would, on one image of a project
// held in a JSON file, with the stand-ins of qupath/ (0.5-like or 0.6-like).
// args: flavour project_dir image_name entry_id state.json script.groovy [FORCE_TYPE]
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import qupath.lib.io.PathIO
import qupath.lib.objects.*

def (flavour, projectDir, imageName, entryId, statePath, scriptPath) = args[0..5]
def forceType = args.size() > 6 ? args[6] : null
Flavour.version = flavour
if (flavour == "0.6")  // PathObject.hasMetadata(), new in QuPath 0.6
    PathObject.metaClass.hasMetadata = { -> delegate.metadata != null && !delegate.metadata.isEmpty() }
def hierarchy = new Hierarchy()
def stateFile = new File(statePath)
if (stateFile.isFile())
    hierarchy.objects = new JsonSlurper().parse(stateFile).collect { f ->
        def o = PathIO.fromFeature(f)
        o.metadata = f.properties.metadata ? new LinkedHashMap(f.properties.metadata) : null  // .qpdata keeps it
        o
    }
def entry = [getImageName: { imageName }, getID: { entryId }]
def binding = new Binding()
binding.setVariable("PROJECT_BASE_DIR", projectDir)
binding.setVariable("getProject", { -> [:] })
binding.setVariable("getProjectEntry", { -> entry })
binding.setVariable("getCurrentHierarchy", { -> hierarchy })
binding.setVariable("fireHierarchyUpdate", { -> })
binding.setVariable("buildFilePath", { String... parts -> parts.join(File.separator) })
binding.setVariable("mkdirs", { String p -> new File(p).mkdirs() })
binding.setVariable("getAnnotationObjects", { -> hierarchy.objects.findAll { it.isAnnotation() } })
binding.setVariable("exportObjectsToGeoJson", { objs, String path, String kind ->
    new File(path).text = JsonOutput.toJson([type: "FeatureCollection", features: objs.collect { PathIO.toFeature(it) }])
})
def text = new File(scriptPath).text
if (forceType)
    text = text.replace('String FORCE_TYPE = null', "String FORCE_TYPE = \"${forceType}\"")
new GroovyShell(this.class.classLoader, binding).evaluate(text)
stateFile.text = JsonOutput.toJson(hierarchy.objects.collect { PathIO.toFeature(it) })
