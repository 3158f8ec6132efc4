#!/usr/bin/env bash
# Install OpenMPI (the launcher and the headers that the `mpi` feature builds against) and
# libclang (which the mpi crate's bindings need) when missing. Debian/Ubuntu.
set -euo pipefail

if command -v mpirun >/dev/null && command -v mpicc >/dev/null \
    && ldconfig -p 2>/dev/null | grep -q 'libclang'; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "no OpenMPI found and no apt-get: install OpenMPI (mpirun, mpicc) and libclang" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y openmpi-bin libopenmpi-dev libclang-dev
