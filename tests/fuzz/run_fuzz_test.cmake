# SPDX-License-Identifier: MIT
# ctest's fuzz_<name>_fuzz (CORIO_FUZZ=ON): SECONDS of libFuzzer on FUZZER,
# seeded with the committed CORPUS (read only) and DICT if given; new inputs
# go to WORK/corpus, emptied first, and a crash's input to WORK/ (its name is
# in the output).  Fails on any finding: libFuzzer exits non-zero on a
# crash, a leak, a sanitizer report, a violated invariant (abort), a slow
# input (-timeout) or too much memory.
#   cmake -DFUZZER=... -DCORPUS=... [-DDICT=...] -DSECONDS=20 -DWORK=... -P run_fuzz_test.cmake
foreach(v FUZZER CORPUS SECONDS WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz_test.cmake: -D${v}=... is missing")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK}/corpus)
file(MAKE_DIRECTORY ${WORK}/corpus)
set(args -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix=${WORK}/)
if(DEFINED DICT)
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus ${CORPUS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER}: exit ${rc} after fuzzing (the input is in ${WORK}/, "
                      "its name above); replay it with: ${FUZZER} <that file>")
endif()
