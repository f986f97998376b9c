# SPDX-License-Identifier: MIT
# Hardening flags for corio's own Release and RelWithDebInfo builds: the
# library (corio_objects, llhttp: libcorio.a and libcorio.so), the examples,
# the tests and the benchmarks, every target made in this directory and
# below after this file is included (CMakeLists.txt includes it before the
# first target).  Not passed on: directory options are no usage
# requirement, so a program linking corio, installed or through a parent's
# add_subdirectory(corio), keeps its own flags.
#
#   compile (C):   -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 (with optimisation
#                  only: glibc warns that it needs -O otherwise; left alone
#                  when CMAKE_C_FLAGS names a level or the compiler already
#                  defines one of 2 or more, so nothing is redefined)
#                  -fstack-protector-strong
#                  -fPIE for executables (libraries are PIC already:
#                  POSITION_INDEPENDENT_CODE on corio_objects and llhttp)
#   link:          -pie for executables; -Wl,-z,relro,-z,now (full RELRO:
#                  the GOT read-only after relocation, no lazy binding) and
#                  -Wl,-z,noexecstack for executables and the shared library
#
# -fstack-clash-protection is not here: CMakeLists.txt gives it to the
# library and everything linking it, in every build type.
# CORIO_HARDENING (default: on when corio is the top-level project, off under
# a parent unless the parent sets it) turns all of it off.
# tests/test_hardening.sh checks the result on examples/hello and libcorio.so.
option(CORIO_HARDENING "Hardening flags (fortify, stack protector, PIE, full RELRO, noexecstack) \
in Release and RelWithDebInfo builds of corio's own targets" ${CORIO_TOP_LEVEL})
if(NOT CORIO_HARDENING)
  message(STATUS "corio: hardening off (CORIO_HARDENING)")
  return()
endif()

include(CheckCCompilerFlag)
include(CheckCSourceCompiles)
include(CheckLinkerFlag)

set(corio_hardened_configs Release RelWithDebInfo)
set(corio_hardened "$<OR:$<CONFIG:Release>,$<CONFIG:RelWithDebInfo>>")
set(corio_exe "$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>")
set(corio_linked "$<OR:${corio_exe},$<STREQUAL:$<TARGET_PROPERTY:TYPE>,SHARED_LIBRARY>,\
$<STREQUAL:$<TARGET_PROPERTY:TYPE>,MODULE_LIBRARY>>")

# _FORTIFY_SOURCE=2, per build type, where its flags optimise (the last -O
# given is not -O0) and nothing else sets it.
set(CMAKE_REQUIRED_FLAGS -O2)
check_c_source_compiles("
#if !defined(_FORTIFY_SOURCE) || _FORTIFY_SOURCE < 2
#error not fortified by default
#endif
int main(void) { return 0; }" CORIO_COMPILER_FORTIFIES)
unset(CMAKE_REQUIRED_FLAGS)
set(corio_fortified "")
foreach(config ${corio_hardened_configs})
  string(TOUPPER ${config} up)
  set(flags "${CMAKE_C_FLAGS} ${CMAKE_C_FLAGS_${up}}")
  string(REGEX MATCHALL "(^| )-O[^ ]*" levels "${flags}")
  list(LENGTH levels n)
  set(optimised OFF)
  if(n GREATER 0)
    list(GET levels -1 last)
    string(STRIP "${last}" last)
    if(NOT last STREQUAL "-O0")
      set(optimised ON)
    endif()
  endif()
  if(flags MATCHES "_FORTIFY_SOURCE" OR CORIO_COMPILER_FORTIFIES)
    set(how "already set")
  elseif(NOT optimised)
    set(how "off: no optimisation")
  else()
    add_compile_options($<$<AND:$<CONFIG:${config}>,$<COMPILE_LANGUAGE:C>>:-U_FORTIFY_SOURCE>
                        $<$<AND:$<CONFIG:${config}>,$<COMPILE_LANGUAGE:C>>:-D_FORTIFY_SOURCE=2>)
    set(how "=2")
  endif()
  string(APPEND corio_fortified " ${config} ${how},")
endforeach()

check_c_compiler_flag(-fstack-protector-strong CORIO_HAVE_STACK_PROTECTOR_STRONG)
if(CORIO_HAVE_STACK_PROTECTOR_STRONG)
  add_compile_options($<$<AND:${corio_hardened},$<COMPILE_LANGUAGE:C>>:-fstack-protector-strong>)
endif()

check_c_compiler_flag(-fPIE CORIO_HAVE_FPIE)
check_linker_flag(C -pie CORIO_HAVE_LINK_PIE)
if(CORIO_HAVE_FPIE AND CORIO_HAVE_LINK_PIE)
  add_compile_options($<$<AND:${corio_hardened},${corio_exe},$<COMPILE_LANGUAGE:C>>:-fPIE>)
  add_link_options($<$<AND:${corio_hardened},${corio_exe}>:-pie>)
endif()

check_linker_flag(C "LINKER:-z,relro,-z,now" CORIO_HAVE_LINK_RELRO_NOW)
if(CORIO_HAVE_LINK_RELRO_NOW)
  add_link_options("$<$<AND:${corio_hardened},${corio_linked}>:LINKER:-z,relro,-z,now>")
endif()
check_linker_flag(C "LINKER:-z,noexecstack" CORIO_HAVE_LINK_NOEXECSTACK)
if(CORIO_HAVE_LINK_NOEXECSTACK)
  add_link_options("$<$<AND:${corio_hardened},${corio_linked}>:LINKER:-z,noexecstack>")
endif()

message(STATUS "corio: hardening on (_FORTIFY_SOURCE:${corio_fortified}"
               " stack protector ${CORIO_HAVE_STACK_PROTECTOR_STRONG}, PIE ${CORIO_HAVE_LINK_PIE},"
               " relro/now ${CORIO_HAVE_LINK_RELRO_NOW}, noexecstack ${CORIO_HAVE_LINK_NOEXECSTACK})")
