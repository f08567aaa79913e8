# SPDX-License-Identifier: GPL-2.0-or-later
"""Finds the Debian cloud kernels the VM suite boots.

Lines 6.1 and 6.12 are Debian 12 packages installed on the host (/boot,
/lib/modules). Line 7 is trixie-backports' newest 7.x, which tools/fetch-kernel
unpacks into a cache directory without installing it: the image and modules
under KSMD_KERNEL_CACHE/7/RELEASE/usr/lib/modules/RELEASE, the headers inside
the trixie build root KSMD_KERNEL_CACHE/trixie, where modules for it are built
(its kbuild tools need trixie's glibc and gcc 14).
"""

import collections
import glob
import os
import re

CACHE_DEFAULT = "/var/cache/ksmd-kernels"

# Debian package names per kernel line, for the "what to install" message.
PACKAGES = {
    "6.1": "apt-get install linux-image-cloud-amd64 linux-headers-cloud-amd64",
    "6.12": "apt-get install linux-image-6.12-cloud-amd64 linux-headers-6.12-cloud-amd64",
    "7": "tools/fetch-kernel 7",
}
# Lines fetched into the cache rather than installed, and their build roots.
CACHED_LINES = {"7": "trixie"}

# One kernel as the bench uses it. kdir is the build directory as make sees it:
# inside build_root when that is set (then build with `build-kmod --root`).
Kernel = collections.namedtuple("Kernel", "release image moddir kdir build_root")


def cache_dir():
    return os.environ.get("KSMD_KERNEL_CACHE") or CACHE_DEFAULT


def _version_key(ver):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", ver)]


def _find_installed(line, boot):
    found = []
    for image in glob.glob(os.path.join(boot, f"vmlinuz-{line}.*-cloud-amd64")):
        ver = os.path.basename(image)[len("vmlinuz-"):]
        # "6.1" must not match "6.12...": the line is followed by a dot.
        if not ver.startswith(line + "."):
            continue
        if os.path.isdir(f"/lib/modules/{ver}/build"):
            found.append(Kernel(ver, image, f"/lib/modules/{ver}", f"/lib/modules/{ver}/build", ""))
    return found


def _find_cached(line, cache):
    root = os.path.join(cache, CACHED_LINES[line])
    if not os.path.exists(os.path.join(root, ".complete")):
        return []
    found = []
    for tree in glob.glob(os.path.join(cache, line, f"{line}.*-cloud-amd64")):
        ver = os.path.basename(tree)
        moddir = os.path.join(tree, "usr/lib/modules", ver)
        kdir = f"/usr/lib/modules/{ver}/build"
        if (os.path.exists(os.path.join(tree, ".complete")) and os.path.exists(os.path.join(moddir, "vmlinuz"))
                and os.path.exists(root + kdir + "/Makefile")):
            found.append(Kernel(ver, os.path.join(moddir, "vmlinuz"), moddir, kdir, root))
    return found


def locate(line, boot="/boot", cache=None):
    """Newest kernel of line ("6.1", "6.12", "7") with its image, modules and
    headers. Returns a Kernel, or None."""
    if line in CACHED_LINES:
        found = _find_cached(line, cache or cache_dir())
    else:
        found = _find_installed(line, boot)
    return max(found, key=lambda k: _version_key(k.release)) if found else None


def find(line, boot="/boot"):
    """Release string of the newest kernel of line, or None."""
    k = locate(line, boot)
    return k.release if k else None


def install_hint(line):
    how = PACKAGES.get(line, f"install the Debian cloud-amd64 kernel image and headers of line {line}")
    return f"{how} (or run tools/install-deps)"
