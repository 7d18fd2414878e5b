# Every test of the project, for CTest: C unit tests, busted specs and the
# linters. In the sanitizer build busted runs inside the instrumented
# executable (moonwatch -l), so the specs exercise the ASan/UBSan core.

set(SANITIZER_ENV
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/cmake/lsan.supp:print_suppressions=0")

if(CMOCKA_FOUND)
  file(GLOB C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/c/test/*_test.c)
  foreach(test_src ${C_TESTS})
    get_filename_component(name ${test_src} NAME_WE)
    string(REGEX REPLACE "_test$" "" unit ${name})
    add_executable(${name} ${test_src} ${CMAKE_SOURCE_DIR}/c/${unit}.c)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/c)
    target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA)
    add_test(NAME c_${unit} COMMAND ${name})
    set_tests_properties(c_${unit} PROPERTIES ENVIRONMENT "${SANITIZER_ENV}")
  endforeach()
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
