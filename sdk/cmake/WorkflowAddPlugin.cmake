# workflow_add_plugin(<name> SOURCES <file>...)
#
# Builds a workflow plugin: a MODULE library <name>.so (no "lib" prefix) with hidden symbols,
# linked to Workflow::sdk. Used in this tree and, installed with the SDK, by find_package(Workflow).
function(workflow_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "SOURCES")
  add_library(${name} MODULE ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE Workflow::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
  )
endfunction()
