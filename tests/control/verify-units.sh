#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# systemd-analyze verify on the units as they are installed, with ExecStart
# and ExecReload pointing at the programs just built (verify checks that the
# binaries exist).
# Usage: verify-units.sh BUILT_SERVICE SOCKET_UNIT KSMD_BINARY KSMCTL_BINARY BUILT_METRICS_SERVICE
#        METRICS_TIMER
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|^ExecStart=.*|ExecStart=$3|" -e "s|^ExecReload=[^ ]*|ExecReload=$4|" "$1" > "$tmp/ksmd.service"
cp "$2" "$tmp/ksmd.socket"
sed -e "s|^ExecStart=[^ ]*|ExecStart=$4|" "$5" > "$tmp/ksmd-metrics.service"
cp "$6" "$tmp/ksmd-metrics.timer"
# The man pages are checked by the man page tests; here only the units.
# verify exits 0 on unknown keys and other warnings: any message fails too.
if ! systemd-analyze verify --man=no "$tmp/ksmd.service" "$tmp/ksmd.socket" "$tmp/ksmd-metrics.service" \
		"$tmp/ksmd-metrics.timer" 2> "$tmp/messages"; then
	cat "$tmp/messages" >&2
	exit 1
fi
if [ -s "$tmp/messages" ]; then
	echo "systemd-analyze verify warned:" >&2
	cat "$tmp/messages" >&2
	exit 1
fi
echo "systemd-analyze verify: ksmd.service, ksmd.socket, ksmd-metrics.service and .timer are valid, without a warning"
