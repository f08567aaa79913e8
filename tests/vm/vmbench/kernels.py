# SPDX-License-Identifier: GPL-2.0-or-later
"""Finds the Debian cloud kernels the VM suite boots."""

import glob
import os
import re

# Debian package names per kernel line, for the "what to install" message.
PACKAGES = {
    "6.1": "linux-image-cloud-amd64 linux-headers-cloud-amd64",
    "6.12": "linux-image-6.12-cloud-amd64 linux-headers-6.12-cloud-amd64",
}


def _version_key(ver):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", ver)]


def find(line, boot="/boot"):
    """Newest installed cloud kernel of line ("6.1", "6.12") that has both its
    image and its headers. Returns its release string, or None."""
    found = []
    for image in glob.glob(os.path.join(boot, f"vmlinuz-{line}.*-cloud-amd64")):
        ver = os.path.basename(image)[len("vmlinuz-"):]
        # "6.1" must not match "6.12...": the line is followed by a dot.
        if not ver.startswith(line + "."):
            continue
        if os.path.isdir(f"/lib/modules/{ver}/build"):
            found.append(ver)
    return max(found, key=_version_key) if found else None


def install_hint(line):
    pkgs = PACKAGES.get(line, f"the Debian cloud-amd64 kernel image and headers of line {line}")
    return f"apt-get install {pkgs} (or run tools/install-deps)"
