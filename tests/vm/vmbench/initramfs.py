# SPDX-License-Identifier: GPL-2.0-or-later
"""Builds the guest's initramfs: busybox-static, /init, the scenario, our
programs with the shared libraries they link (found with ldd), the module
under test and the kernel's own modules a scenario may need (zram)."""

import lzma
import os
import re
import shutil
import subprocess
import tempfile

BUSYBOX = "/bin/busybox"

# Kernel modules copied from the guest kernel's own tree, loaded in order by
# /init, with those a scenario asks for (vm-test --kernel-module). Their
# dependencies are resolved from modules.dep; one built into the kernel
# (modules.builtin, as on the debug kernel line) needs no loading. 6.1's zram
# compresses through the crypto API and the guest has no modprobe to fetch a
# compressor: without lz4 it falls back to deflate, several times slower
# under TCG.
KERNEL_MODULES = ["zram", "lz4"]


class BenchError(Exception):
    """A problem with the host setup; the message says what to install."""


def _ldd_libs(path, root=None):
    """The shared libraries path links; with root, path and the libraries
    are paths inside that release's root, resolved by its own ldd."""
    cmd = ["chroot", root, "ldd", path] if root else ["ldd", path]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        # Static executables make ldd fail ("not a dynamic executable").
        return []
    libs = []
    for line in out.stdout.splitlines():
        if "not found" in line:
            raise BenchError(f"{path}: shared library missing on the host: {line.strip()}")
        m = re.search(r"(/\S+)", line.split("=>")[-1])
        if m:
            libs.append(m.group(1))
    return libs


def _copy(src, root, dest=None):
    dest = dest or src
    target = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # A busybox applet link may already stand there, pointing at an absolute
    # /bin/busybox: writing through it would overwrite the host's file.
    if os.path.islink(target):
        os.unlink(target)
    shutil.copy2(src, target, follow_symlinks=True)
    return target


def _module_path(moddir, name):
    """Finds a module by name in modules.dep; returns (relpath, [dep relpaths])."""
    depfile = os.path.join(moddir, "modules.dep")
    if not os.path.exists(depfile):
        raise BenchError(f"{depfile} is missing: install the kernel image package for this kernel")
    want = name.replace("-", "_")
    with open(depfile) as f:
        for line in f:
            path, _, deps = line.partition(":")
            base = os.path.basename(path).split(".ko")[0].replace("-", "_")
            if base == want:
                return path, deps.split()
    raise BenchError(f"kernel module {name} not found in {depfile}")


def _builtin(moddir, name):
    """Whether the kernel has module name built in (modules.builtin)."""
    want = name.replace("-", "_")
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return any(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") == want
                       for line in f)
    except FileNotFoundError:
        return False


def kernel_module_order(moddir, names):
    """Relative paths of names and all their dependencies, dependencies first;
    names the kernel has built in are left out."""
    order = []

    def visit(rel):
        if rel in order:
            return
        _, deps = _module_path(moddir, os.path.basename(rel).split(".ko")[0])
        for d in reversed(deps):
            visit(d)
        order.append(rel)

    for n in names:
        if _builtin(moddir, n):
            continue
        rel, _ = _module_path(moddir, n)
        visit(rel)
    return order


def _builtin(moddir, name):
    """Whether the kernel has module name built in (lz4 is, on 7.x)."""
    want = name.replace("-", "_")
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return any(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") == want for line in f)
    except FileNotFoundError:
        return False


def _install_kernel_module(moddir, rel, root):
    src = os.path.join(moddir, rel)
    name = os.path.basename(rel)
    dest = os.path.join(root, "lib/modules/kernel", re.sub(r"\.ko\..*$", ".ko", name))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if rel.endswith(".xz"):
        with lzma.open(src) as fi, open(dest, "wb") as fo:
            shutil.copyfileobj(fi, fo)
    elif rel.endswith(".ko"):
        shutil.copy2(src, dest)
    else:
        raise BenchError(f"{src}: compressed module format not supported by the bench")
    return os.path.basename(dest)


def build(out_path, init_script, scenario, lib_script, moddir, module=None,
          extra_modules=(), programs=(), kernel_modules=(), prog_root=None):
    """Writes a gzip-compressed newc cpio to out_path. moddir is the guest
    kernel's modules directory (/lib/modules/RELEASE, or a fetched one).
    Programs under prog_root (another Debian release's root, as
    tools/fetch-kernel makes) come with that release's libraries, which
    replace this host's: glibc and the others run older programs too."""
    if not os.access(BUSYBOX, os.X_OK):
        raise BenchError(f"{BUSYBOX} is missing: apt-get install busybox-static")

    with tempfile.TemporaryDirectory(prefix="ksmd-vm-") as root:
        # The temporary directory is 0700; as the guest's / it would keep
        # every user but root out of everything.
        os.chmod(root, 0o755)
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run",
                  "etc", "lib/modules/ksmd", "lib/modules/kernel", "root"):
            os.makedirs(os.path.join(root, d), exist_ok=True)

        _copy(BUSYBOX, root, "/bin/busybox")
        applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for a in applets:
            link = os.path.join(root, a)
            if not os.path.exists(link):
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink("/bin/busybox", link)

        _copy(init_script, root, "/init")
        os.chmod(os.path.join(root, "init"), 0o755)
        _copy(lib_script, root, "/lib/ksmd-vm.sh")
        _copy(scenario, root, "/scenario.sh")
        os.chmod(os.path.join(root, "scenario.sh"), 0o755)

        libs = set()
        root_libs = set()
        prefix = os.path.join(prog_root, "") if prog_root else None
        for p in programs:
            _copy(p, root, "/usr/bin/" + os.path.basename(p))
            if prefix and p.startswith(prefix):
                root_libs.update(_ldd_libs("/" + p[len(prefix):], prog_root))
            else:
                libs.update(_ldd_libs(p))
        for lib in sorted(libs):
            _copy(lib, root)
        for lib in sorted(root_libs):
            _copy(prefix + lib.lstrip("/"), root, lib)
            # The loader looks libraries up by the path ldd printed, but some
            # programs name /lib64/ld-linux-x86-64.so.2: keep both resolvable.
        for link in ("lib64",):
            p = os.path.join(root, link)
            if not os.path.exists(p) and os.path.isdir(os.path.join(root, "usr", link)):
                os.symlink("usr/" + link, p)
        if libs and not os.path.exists(os.path.join(root, "lib64/ld-linux-x86-64.so.2")):
            _copy("/lib64/ld-linux-x86-64.so.2", root)

        # The module under test keeps its real name whatever the build called it.
        if module:
            _copy(module, root, "/lib/modules/ksmd/ksmd_helper.ko")
        for name, path in extra_modules:
            _copy(path, root, "/lib/modules/ksmd/" + name)

        order = [_install_kernel_module(moddir, rel, root)
                 for rel in kernel_module_order(moddir, KERNEL_MODULES + list(kernel_modules))]
        with open(os.path.join(root, "lib/modules/kernel/load-order"), "w") as f:
            f.write("\n".join(order) + "\n")

        tmp = out_path + ".tmp"
        with open(tmp, "wb") as out:
            find = subprocess.Popen(["find", "."], cwd=root, stdout=subprocess.PIPE)
            cpio = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc"], cwd=root,
                                    stdin=find.stdout, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=out)
            find.stdout.close()
            cpio.stdout.close()
            if gz.wait() or cpio.wait() or find.wait():
                raise BenchError("packing the initramfs failed (is cpio installed?)")
        os.replace(tmp, out_path)
