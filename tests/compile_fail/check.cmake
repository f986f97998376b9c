# SPDX-License-Identifier: MIT
# A compile-fail test: cmake -DCC=<compiler> -DSRC=<file.c> -DINCLUDE=<dir>
#   "-DFLAGS=<flags, space-separated>" "-DEXPECT=<regex>" -P check.cmake
# Compiles SRC with -DCORIO_COMPILE_FAIL_CONTROL, which must succeed (so the
# command line is sound), then without it, which must fail with a diagnostic
# matching EXPECT (so it fails for the reason under test, not another one).
foreach(var CC SRC INCLUDE EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check.cmake: -D${var}= is required")
  endif()
endforeach()
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
set(cmd ${CC} -std=gnu11 -Wall -Wextra ${flags} -I${INCLUDE} -fsyntax-only ${SRC})
list(JOIN cmd " " shown)

execute_process(COMMAND ${cmd} -DCORIO_COMPILE_FAIL_CONTROL RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the control compile failed (the command line is broken, not the test):\n"
                      "${shown} -DCORIO_COMPILE_FAIL_CONTROL\n${out}")
endif()

execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "compiled, but must not:\n${shown}\n${out}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "failed, but not with /${EXPECT}/:\n${shown}\n${out}")
endif()
message(STATUS "refused as expected: ${shown}")
