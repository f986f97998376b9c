# SPDX-License-Identifier: MIT
# corio's install rules, included by CMakeLists.txt with CORIO_INSTALL:
#   <libdir>/libcorio.a, libcorio.so.0.2.0 (+ the libcorio.so.0.2 and .so links)
#   <includedir>/corio/*.h
#   <libdir>/cmake/corio/    the CMake package: find_package(corio CONFIG) gives
#                            corio::corio (shared; static with CORIO_USE_STATIC_LIBS),
#                            corio::corio_shared and corio::corio_static
#   <libdir>/pkgconfig/corio.pc
# tests/test_install.sh installs a build and builds examples/out-of-tree with both.
include(CMakePackageConfigHelpers)
set(CORIO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/corio)

install(TARGETS ${CORIO_LIBRARIES} EXPORT corioTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/corio DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")

# ---- the CMake package --------------------------------------------------------------
# corioConfig.cmake finds what the static library needs (libuv as corio::uv,
# OpenSSL 3, Threads, and libpq / hiredis when this build has them) before it
# imports the targets.  Versions: 0.x minor versions may break the API, so a
# find_package(corio 0.1) accepts 0.1.* only.
if(LIBPQ_FOUND)
  set(CORIO_CONFIG_HAVE_PG ON)
else()
  set(CORIO_CONFIG_HAVE_PG OFF)
endif()
if(HIREDIS_FOUND)
  set(CORIO_CONFIG_HAVE_REDIS ON)
else()
  set(CORIO_CONFIG_HAVE_REDIS OFF)
endif()
if(ZLIB_PC_FOUND)
  set(CORIO_CONFIG_HAVE_WS ON)
else()
  set(CORIO_CONFIG_HAVE_WS OFF)
endif()
install(EXPORT corioTargets NAMESPACE corio:: DESTINATION ${CORIO_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/corioConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/cmake/corioConfig.cmake
                              INSTALL_DESTINATION ${CORIO_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/corioConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/corioConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/corioConfigVersion.cmake
        DESTINATION ${CORIO_CMAKE_DIR})

# ---- corio.pc -----------------------------------------------------------------------
# Cflags: the include directory and the usage requirements (CORIO_HAVE_PG,
# CORIO_HAVE_REDIS, -fstack-clash-protection ...).  Libs: -lcorio (and a
# sanitized build's -fsanitize=...).  For `pkg-config --static`: libuv,
# OpenSSL and hiredis as Requires.private, libpq as a plain -lpq in
# Libs.private: Debian's libpq.pc asks a static link for -lpgcommon -lpgport
# -lldap, which libpq-dev does not ship.  No public header includes a
# dependency's header, so their Cflags are not needed.
# prefix is the one of the install (cmake --install --prefix, or
# CMAKE_INSTALL_PREFIX), so the file is written at install time, from a
# template with everything else filled in now.
set(CORIO_PC_CFLAGS "")
foreach(d ${CORIO_PUBLIC_DEFS})
  string(APPEND CORIO_PC_CFLAGS " -D${d}")
endforeach()
foreach(o ${CORIO_PUBLIC_C_OPTIONS})
  string(APPEND CORIO_PC_CFLAGS " ${o}")
endforeach()
set(CORIO_PC_LIBS "")
if(CORIO_SANITIZE)
  set(CORIO_PC_LIBS " -fsanitize=${CORIO_SANITIZE}")
endif()
set(CORIO_PC_REQUIRES "libuv, libssl >= 3, libcrypto >= 3")
set(CORIO_PC_LIBS_PRIVATE "")
if(LIBPQ_FOUND)
  string(APPEND CORIO_PC_LIBS_PRIVATE " -lpq")
endif()
if(HIREDIS_FOUND)
  string(APPEND CORIO_PC_REQUIRES ", hiredis")
endif()
if(ZLIB_PC_FOUND)
  string(APPEND CORIO_PC_REQUIRES ", zlib")
endif()
if(CMAKE_THREAD_LIBS_INIT)
  string(APPEND CORIO_PC_LIBS_PRIVATE " ${CMAKE_THREAD_LIBS_INIT}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CORIO_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CORIO_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
set(CORIO_PC_PREFIX "@CORIO_PC_PREFIX@") # kept for the install-time pass
configure_file(${CMAKE_CURRENT_LIST_DIR}/corio.pc.in ${PROJECT_BINARY_DIR}/cmake/corio.pc.in @ONLY)
install(CODE "set(CORIO_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
configure_file(\"${PROJECT_BINARY_DIR}/cmake/corio.pc.in\" \"${PROJECT_BINARY_DIR}/cmake/corio.pc\" @ONLY)")
install(FILES ${PROJECT_BINARY_DIR}/cmake/corio.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
