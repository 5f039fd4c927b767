#!/usr/bin/env bash
# Copies the build dependencies a bare GPU machine lacks (it has nvcc and CMake, but none of the
# Debian packages loom uses) into third_party_local/ (git-ignored), laid out as an install prefix:
#
#   include/xsimd/        xsimd headers                (libxsimd-dev)
#   include/catch2/       Catch2 v2 single header       (catch2)
#   include/benchmark/    Google Benchmark headers      (libbenchmark-dev)
#   lib/<soname>          Google Benchmark, shared (Debian ships no static archive of it), copied
#                         under its soname as a plain file: no symbolic links to lose in transit
#   lib/cmake/{Catch2,benchmark}/  small package configs pointing at the above
#
# Configure with -DLOOM_THIRD_PARTY=$PWD/third_party_local and CMake finds all of it there first.
# The copy is about 2.5 MiB; it travels to the GPU machine with carry ["third_party_local"].
# Usage: tools/vendor_local.sh [destination]   (default: third_party_local in the repository)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-"$here/third_party_local"}
inc=${LOOM_VENDOR_INCLUDE:-/usr/include}
libdir=${LOOM_VENDOR_LIBDIR:-/usr/lib/x86_64-linux-gnu}

need() { [ -e "$1" ] || { echo "vendor_local: $1 not found (install $2)" >&2; exit 1; }; }
need "$inc/xsimd/xsimd.hpp" libxsimd-dev
need "$inc/catch2/catch.hpp" catch2
need "$inc/benchmark/benchmark.h" libbenchmark-dev

rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib/cmake/Catch2" "$dest/lib/cmake/benchmark"
cp -r "$inc/xsimd" "$inc/catch2" "$inc/benchmark" "$dest/include/"

# The real file under the name the loader asks for (its soname).
so=$(readlink -f "$libdir/libbenchmark.so")
need "$so" libbenchmark-dev
soname=$(objdump -p "$so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
soname=${soname:-$(basename "$so")}
cp "$so" "$dest/lib/$soname"
if [ -e "$libdir/libbenchmark.a" ]; then cp "$libdir/libbenchmark.a" "$dest/lib/"; fi

cat >"$dest/lib/cmake/Catch2/Catch2Config.cmake" <<'EOF'
# Written by loom's tools/vendor_local.sh: Catch2 v2, single header.
get_filename_component(_loom_tp "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET Catch2::Catch2)
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_loom_tp}/include")
endif()
unset(_loom_tp)
EOF

cat >"$dest/lib/cmake/benchmark/benchmarkConfig.cmake" <<EOF
# Written by loom's tools/vendor_local.sh: Google Benchmark, shared library copied from the system.
get_filename_component(_loom_tp "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET benchmark::benchmark)
  include(CMakeFindDependencyMacro)
  find_dependency(Threads)
  add_library(benchmark::benchmark SHARED IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_loom_tp}/lib/$soname"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_loom_tp}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
unset(_loom_tp)
EOF

echo "vendor_local: $(du -sh "$dest" | cut -f1) in $dest"
