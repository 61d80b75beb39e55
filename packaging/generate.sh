#!/bin/sh
# Writes the files `make install` generates into OUTDIR: wsconn.pc, the CMake
# package (wsconnConfig.cmake, wsconnConfigVersion.cmake) and the man page
# wsconn.3. The Makefile passes the install paths (without DESTDIR) and the
# version in the environment.
#
# Usage: VERSION=… PREFIX=… LIBDIR=… INCLUDEDIR=… CMAKEDIR=… generate.sh OUTDIR
set -eu
here=$(dirname "$0")
out=$1
mkdir -p "$out"

major=${VERSION%%.*}
minor=${VERSION#*.}
minor=${minor%%.*}
libs=$("$here/native-static-libs.sh")
# CMake wants names ("gcc_s;util;…") where pkg-config has flags.
cmake_libs=$(printf '%s\n' "$libs" | sed 's/^-l//; s/ -l/ /g; s/ /;/g')
# Relative, so that the CMake package finds the files wherever the tree lies.
cmake_to_libdir=$(realpath -ms --relative-to="$CMAKEDIR" "$LIBDIR")
cmake_to_includedir=$(realpath -ms --relative-to="$CMAKEDIR" "$INCLUDEDIR")

fill() {
    sed -e "s|@VERSION@|$VERSION|g" -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" \
        -e "s|@PREFIX@|$PREFIX|g" -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@INCLUDEDIR@|$INCLUDEDIR|g" \
        -e "s|@LIBS_PRIVATE@|$libs|g" -e "s|@STATIC_LINK_LIBRARIES@|$cmake_libs|g" \
        -e "s|@CMAKE_TO_LIBDIR@|$cmake_to_libdir|g" \
        -e "s|@CMAKE_TO_INCLUDEDIR@|$cmake_to_includedir|g" \
        "$here/$1.in" >"$out/$1"
}
fill wsconn.pc
fill wsconnConfig.cmake
fill wsconnConfigVersion.cmake
"${PYTHON3:-python3}" "$here/manpage.py" "$here/../include/wsconn.h" >"$out/wsconn.3"
