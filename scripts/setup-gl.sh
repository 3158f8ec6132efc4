#!/usr/bin/env bash
# Install Mesa's software OpenGL driver (llvmpipe) and the EGL loader when they are
# missing, so that bitspike's kernels also run on wgpu's GL backend (WGPU_BACKEND=gl) on
# machines without a GPU. Debian/Ubuntu.
set -euo pipefail

have_egl() { ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa\.so\.0'; }
have_driver() {
    compgen -G '/usr/lib/*/dri/swrast_dri.so' >/dev/null \
        || compgen -G '/usr/lib/dri/swrast_dri.so' >/dev/null
}

if have_egl && have_driver; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "no Mesa EGL driver found and no apt-get: install Mesa's EGL and DRI drivers" \
         "(libegl-mesa0, libgl1-mesa-dri) for the software OpenGL driver llvmpipe" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri
