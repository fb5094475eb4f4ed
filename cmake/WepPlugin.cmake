# wep_add_plugin(<target> SOURCES ...): a plugin is a MODULE library with
# hidden visibility whose only export is wep_plugin_entry (enforced by the
# linker version script plugin_exports.map, next to this file). -fno-gnu-unique
# keeps g++ from marking it NODELETE, so dlclose really unmaps it. Links
# wep::plugin_api, which must exist when the function is called (in-tree, or
# from find_package(wep)).
#
# Installed with the wep package and included by wepConfig.cmake, so plugins
# built outside this project get exactly the same rules.

# Captured at include time: CMAKE_CURRENT_LIST_DIR inside the function would be
# the caller's folder. A global property, so that a call from any directory
# scope sees it.
set_property(GLOBAL PROPERTY WEP_PLUGIN_EXPORTS_MAP "${CMAKE_CURRENT_LIST_DIR}/plugin_exports.map")

function(wep_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT TARGET wep::plugin_api)
    message(FATAL_ERROR "wep_add_plugin(${target}): target wep::plugin_api not found (find_package(wep) first)")
  endif()
  get_property(exports_map GLOBAL PROPERTY WEP_PLUGIN_EXPORTS_MAP)
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${target} PRIVATE $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-fno-gnu-unique>)
  # --no-undefined, except in clang sanitizer builds (WEP_PLUGIN_ALLOW_UNDEFINED): there the
  # sanitizer runtime lives in the executable, not in each plugin.
  if(NOT WEP_PLUGIN_ALLOW_UNDEFINED)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
  target_link_options(${target} PRIVATE -Wl,--exclude-libs,ALL -Wl,--version-script=${exports_map})
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${exports_map})
  target_link_libraries(${target} PRIVATE wep::plugin_api)
endfunction()
