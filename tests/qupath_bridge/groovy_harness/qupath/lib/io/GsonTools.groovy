package qupath.lib.io

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

// GsonTools.getInstance(): toJson / fromJson(String, Class)
class GsonTools {
    static GsonTools getInstance() { new GsonTools() }
    String toJson(Object o) { JsonOutput.toJson(o) }
    Object fromJson(String text, Class cls) { new JsonSlurper().parseText(text) }
}
