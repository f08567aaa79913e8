# SPDX-License-Identifier: GPL-2.0-or-later
"""The ksmd VM test bench: boots a Debian cloud kernel under QEMU/TCG with
the module, our programs and one scenario, and turns what the guest prints
into a TAP verdict."""
