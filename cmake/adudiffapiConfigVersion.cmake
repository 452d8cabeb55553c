# adudiffapiConfigVersion.cmake - version check for find_package(adudiffapi [version]).
#
# PACKAGE_VERSION must equal the crate version in Cargo.toml (tests/packaging.rs checks this).
# Compatibility: same major version (for 0.x: same minor version) and not older than requested.
# The architecture is not checked here: the library is installed per host (or per .deb arch).

set(PACKAGE_VERSION "0.1.0")

if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _adudiffapi_mm "${PACKAGE_VERSION}")
  set(_adudiffapi_major "${CMAKE_MATCH_1}")
  set(_adudiffapi_minor "${CMAKE_MATCH_2}")
  if(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL _adudiffapi_major)
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  elseif(_adudiffapi_major STREQUAL "0" AND PACKAGE_FIND_VERSION_COUNT GREATER 1
         AND NOT PACKAGE_FIND_VERSION_MINOR STREQUAL _adudiffapi_minor)
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  else()
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
    if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
      set(PACKAGE_VERSION_EXACT TRUE)
    endif()
  endif()
  unset(_adudiffapi_mm)
  unset(_adudiffapi_major)
  unset(_adudiffapi_minor)
endif()
