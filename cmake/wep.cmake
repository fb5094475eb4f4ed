# wep_add_plugin(<target> SOURCES ...): a plugin is a MODULE library with
# hidden visibility whose only export is wep_plugin_entry (enforced by
# cmake/plugin_exports.map). -fno-gnu-unique
# keeps g++ from marking it NODELETE, so dlclose really unmaps it.
function(wep_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${target} PRIVATE -fno-gnu-unique)
  target_link_options(${target} PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL
                      -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/plugin_exports.map)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/plugin_exports.map)
  target_link_libraries(${target} PRIVATE wep::plugin_api)
endfunction()

# wep_embed_text(<target> <file> <symbol>): makes the text of <file>
# available to <target> as `inline constexpr char <symbol>[]` via a generated
# header <symbol>.h, regenerated when the file changes.
function(wep_embed_text target file symbol)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/embedded)
  set(header ${out_dir}/${symbol}.h)
  add_custom_command(
    OUTPUT ${header}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${file} -DOUTPUT=${header} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake
    COMMENT "Embedding ${file}")
  target_sources(${target} PRIVATE ${header})
  target_include_directories(${target} PRIVATE ${out_dir})
endfunction()

# wep_add_test(<name> SOURCES ... [LIBS ...] [PLUGINS target...]): a Boost.Test
# executable registered with CTest. Each PLUGINS target becomes a dependency
# and a compile definition <TARGET>_PATH="/abs/path/to/lib<target>.so"
# (upper-cased target name).
function(wep_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;PLUGINS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_definitions(${name} PRIVATE BOOST_TEST_DYN_LINK)
  target_link_libraries(${name} PRIVATE Boost::unit_test_framework Threads::Threads ${ARG_LIBS})
  foreach(plugin ${ARG_PLUGINS})
    string(TOUPPER ${plugin} upper)
    add_dependencies(${name} ${plugin})
    target_compile_definitions(${name} PRIVATE ${upper}_PATH="$<TARGET_FILE:${plugin}>")
  endforeach()
  add_test(NAME ${name} COMMAND ${name} --log_level=message --report_level=short)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
endfunction()
