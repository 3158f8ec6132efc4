#!/usr/bin/env bash
# Install the software Vulkan driver (Mesa lavapipe) and the loader when no Vulkan driver
# is present, so that bitspike's kernels run on machines without a GPU. Debian/Ubuntu.
set -euo pipefail

have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }
have_driver() {
    ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
        /usr/local/share/vulkan/icd.d/*.json >/dev/null 2>&1
}

if have_loader && have_driver; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "no Vulkan driver found and no apt-get: install a Vulkan driver for your GPU," \
         "or Mesa's lavapipe (mesa-vulkan-drivers) for a software one" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y mesa-vulkan-drivers libvulkan1
