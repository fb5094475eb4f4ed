# wep_add_plugin(<target> SOURCES ...): see WepPlugin.cmake (installed with the
# package, so out-of-tree plugins are built the same way).
include(${CMAKE_CURRENT_LIST_DIR}/WepPlugin.cmake)

# wep_add_plugin_library(<target> SOURCES ...): a static library of code that
# ends up inside plugins, so it is compiled like plugin code: PIC, hidden
# visibility, -fno-gnu-unique (nothing in it may keep a plugin mapped).
function(wep_add_plugin_library target)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(${target} STATIC ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)  # GCC only; clang emits no unique symbols
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
  target_link_libraries(${name} PRIVATE Boost::unit_test_framework Threads::Threads wep::test_support ${ARG_LIBS})
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
