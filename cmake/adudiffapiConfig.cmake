# adudiffapiConfig.cmake - CMake package configuration of libadudiffapi (find_package(adudiffapi)).
#
# Provides the IMPORTED target adudiffapi::adudiffapi (the shared library, its SONAME and the
# include directory holding adudiffapi.h and legacy_adudiffapply.h), plus the classic variables
# adudiffapi_INCLUDE_DIRS and adudiffapi_LIBRARIES.
#
# Relocatable: the install prefix is computed from this file's own location,
# <prefix>/lib/cmake/adudiffapi/, so a DESTDIR staging tree or a moved prefix works unchanged.
# The directory is resolved through symbolic links first, so that finding the file through a
# merged-/usr link such as /lib -> /usr/lib still yields /usr as the prefix.

get_filename_component(_adudiffapi_dir "${CMAKE_CURRENT_LIST_DIR}" REALPATH)
get_filename_component(_adudiffapi_prefix "${_adudiffapi_dir}/../../.." ABSOLUTE)

set(_adudiffapi_library "${_adudiffapi_prefix}/lib/libadudiffapi.so")
set(_adudiffapi_include_dir "${_adudiffapi_prefix}/include")

if(NOT EXISTS "${_adudiffapi_library}" OR NOT EXISTS "${_adudiffapi_include_dir}/adudiffapi.h")
  set(adudiffapi_FOUND FALSE)
  set(adudiffapi_NOT_FOUND_MESSAGE
      "adudiffapi: ${_adudiffapi_library} or ${_adudiffapi_include_dir}/adudiffapi.h is missing")
  unset(_adudiffapi_dir)
  unset(_adudiffapi_prefix)
  unset(_adudiffapi_library)
  unset(_adudiffapi_include_dir)
  return()
endif()

if(NOT TARGET adudiffapi::adudiffapi)
  add_library(adudiffapi::adudiffapi SHARED IMPORTED)
  set_target_properties(adudiffapi::adudiffapi PROPERTIES
    IMPORTED_LOCATION "${_adudiffapi_library}"
    IMPORTED_SONAME "libadudiffapi.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_adudiffapi_include_dir}")
endif()

set(adudiffapi_INCLUDE_DIRS "${_adudiffapi_include_dir}")
set(adudiffapi_LIBRARIES adudiffapi::adudiffapi)
set(adudiffapi_FOUND TRUE)

unset(_adudiffapi_dir)
unset(_adudiffapi_prefix)
unset(_adudiffapi_library)
unset(_adudiffapi_include_dir)
