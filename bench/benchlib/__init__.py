# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers shared by the benchmarks in bench/."""
