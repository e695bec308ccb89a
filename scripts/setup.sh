#!/bin/sh
# Install every package the build, the demo and the tests need. Safe to run again:
# it only calls apt-get when something is missing.
set -eu
PKGS="make gcc clang llvm lld libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
 libpcap-dev libcurl4-openssl-dev libmsgpack-dev libcmocka-dev pkg-config
 nginx-light wrk curl jq tshark tcpdump tcpreplay iproute2 procps psmisc python3 python3-scapy
 openjdk-17-jdk-headless maven valgrind python3-matplotlib"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || { echo "setup: missing packages:$missing (run as root to install)" >&2; exit 1; }
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# nginx from the package starts a default site on :80; our tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
	systemctl stop nginx || true
fi
if [ -f /run/nginx.pid ] && pgrep -F /run/nginx.pid >/dev/null 2>&1; then
	nginx -s quit 2>/dev/null || true
fi
mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
exit 0
