# Every test of the project, for CTest: C unit tests, busted specs and the
# linters. In the sanitizer build busted runs inside the instrumented
# executable (moonwatch -l), so the specs exercise the ASan/UBSan core.

set(SANITIZER_ENV
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/cmake/lsan.supp:print_suppressions=0")

# C unit tests, one per layer. Each links its unit and the layers below it
# (never the whole core), so a test that needs a higher layer does not link.
set(UNIT_log c/log.c)
set(UNIT_dns_cache c/dns_cache.c)
set(UNIT_dns_answer c/dns_answer.c)
set(UNIT_tick_heap c/tick_heap.c)
set(UNIT_regex c/regex.c)
set(UNIT_tz c/tz.c)
set(UNIT_store c/store.c)
set(UNIT_metrics c/metrics.c)
set(UNIT_loop c/loop.c)
set(UNIT_workq c/workq.c)
set(UNIT_task c/task.c c/watchdog.c ${UNIT_loop})
set(UNIT_smtp c/smtp.c c/curl_kind.c ${UNIT_loop})
set(UNIT_server c/server.c c/server_http.c c/auth.c ${UNIT_loop})
set(UNIT_transfer c/transfer.c c/http.c c/resolver.c c/dns_channel.c c/cert.c ${UNIT_dns_cache} ${UNIT_loop})

if(CMOCKA_FOUND)
  file(GLOB C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/c/test/*_test.c)
  foreach(test_src ${C_TESTS})
    get_filename_component(name ${test_src} NAME_WE)
    string(REGEX REPLACE "_test$" "" unit ${name})
    if(NOT DEFINED UNIT_${unit})
      message(FATAL_ERROR "c/test/${name}.c: say in cmake/tests.cmake what it links (UNIT_${unit})")
    endif()
    list(TRANSFORM UNIT_${unit} PREPEND ${CMAKE_SOURCE_DIR}/ OUTPUT_VARIABLE unit_sources)
    add_executable(${name} ${test_src} ${unit_sources})
    target_compile_definitions(${name} PRIVATE MOONWATCH_VERSION="test")
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/c)
    target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA PkgConfig::LUA PkgConfig::UV
                                          PkgConfig::CURL PkgConfig::CARES PkgConfig::PCRE2
                                          PkgConfig::OPENSSL PkgConfig::SQLITE
                                          ${HTTP_PARSER_LIBRARY} m)
    add_test(NAME c_${unit} COMMAND ${name})
    set_tests_properties(c_${unit} PROPERTIES ENVIRONMENT "${SANITIZER_ENV}")
  endforeach()
else()
  add_test(NAME missing_cmocka COMMAND ${CMAKE_COMMAND} -E echo
    "cmocka is not installed: run scripts/deps test (Debian package libcmocka-dev)")
  set_tests_properties(missing_cmocka PROPERTIES PASS_REGULAR_EXPRESSION "^$")
endif()

# A tool that is missing fails its test loudly rather than skipping it; the
# build itself does not need them (scripts/deps test installs them).
function(require_tool var name package)
  find_program(${var} ${name})
  if(NOT ${var})
    add_test(NAME missing_${name} COMMAND ${CMAKE_COMMAND} -E echo
      "${name} is not installed: run scripts/deps test (Debian package ${package})")
    set_tests_properties(missing_${name} PROPERTIES WILL_FAIL OFF PASS_REGULAR_EXPRESSION "^$")
    set(${var} ${name} PARENT_SCOPE)
  endif()
endfunction()

require_tool(BUSTED busted lua-busted)
if(MOONWATCH_SANITIZE)
  set(BUSTED_CMD $<TARGET_FILE:moonwatch> -l ${BUSTED} --ignore-lua)
else()
  require_tool(LUA_INTERP lua5.4 lua5.4)
  set(BUSTED_CMD ${LUA_INTERP} ${BUSTED} --ignore-lua)
endif()
add_test(NAME busted
  COMMAND ${BUSTED_CMD} --cpath=${CMAKE_BINARY_DIR}/lib/?.so --output=plainTerminal
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(busted PROPERTIES ENVIRONMENT
  "${SANITIZER_ENV};MOONWATCH_BIN=$<TARGET_FILE:moonwatch>;MOONWATCH_BUILD=${CMAKE_BINARY_DIR};MOONWATCH_SANITIZE=${MOONWATCH_SANITIZE}")

if(NOT MOONWATCH_SANITIZE)
  require_tool(LUACHECK luacheck lua-check)
  add_test(NAME luacheck COMMAND ${LUACHECK} --no-color -q lua spec bench monitors.lua
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  find_program(CLANG_FORMAT clang-format)
  if(CLANG_FORMAT)
    file(GLOB_RECURSE C_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/c/*.c ${CMAKE_SOURCE_DIR}/c/*.h)
    add_test(NAME clang_format COMMAND ${CLANG_FORMAT} --dry-run -Werror ${C_FILES})
  endif()
endif()

# The layers: no C file calls a function of a higher layer (cmake/layers.lua
# reads gcc's call graphs of the core, built once more for it).
if(NOT MOONWATCH_SANITIZE AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  file(GLOB LAYER_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/c/*.c)
  add_library(mw_callgraph OBJECT ${LAYER_SOURCES})
  target_compile_options(mw_callgraph PRIVATE -fcallgraph-info)
  target_compile_definitions(mw_callgraph PRIVATE MOONWATCH_VERSION="callgraph"
                                                  MOONWATCH_LUA_DIR="")
  target_include_directories(mw_callgraph PRIVATE ${LUA_INCLUDE_DIRS} ${UV_INCLUDE_DIRS}
                                                  ${CURL_INCLUDE_DIRS} ${CARES_INCLUDE_DIRS}
                                                  ${PCRE2_INCLUDE_DIRS} ${OPENSSL_INCLUDE_DIRS}
                                                  ${SQLITE_INCLUDE_DIRS}
                                                  ${HTTP_PARSER_INCLUDE_DIR})
  require_tool(LUA_FOR_LAYERS lua5.4 lua5.4)
  add_test(NAME layers COMMAND ${LUA_FOR_LAYERS} ${CMAKE_SOURCE_DIR}/cmake/layers.lua
    ${CMAKE_BINARY_DIR}/CMakeFiles/mw_callgraph.dir)
endif()
