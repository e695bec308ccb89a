#!/bin/sh
# Regenerate vmlinux.h from the running kernel's BTF. The checked-in copy is what
# the build uses; run this only when moving to a kernel with types we need.
set -eu
cd "$(dirname "$0")/.."
btf=${1:-/sys/kernel/btf/vmlinux}
[ -r "$btf" ] || { echo "gen-vmlinux: $btf not readable (kernel without BTF?)" >&2; exit 1; }
bpftool btf dump file "$btf" format c > vmlinux.h.tmp
mv vmlinux.h.tmp vmlinux.h
echo "vmlinux.h regenerated from $btf ($(wc -l < vmlinux.h) lines)"
