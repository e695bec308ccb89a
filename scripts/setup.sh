#!/bin/sh
# Install every package the build, the demo and the tests need. Safe to run again:
# it only calls apt-get when something is missing.
set -eu
PKGS="make gcc clang llvm lld libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
 libpcap-dev libcurl4-openssl-dev libssl-dev libmsgpack-dev libcmocka-dev pkg-config
 nginx-light wrk apache2-utils curl jq tshark tcpdump tcpreplay iproute2 procps psmisc libcap2-bin python3 python3-scapy
 openjdk-17-jdk-headless maven valgrind python3-matplotlib python3-yaml prometheus
 chromium"
# Go builds the benchmark's load generator, GoReplay (recording test, benchmark) and
# terraform (deploy checks). Use the toolchain the machine ships in /usr/local/go,
# else Debian's golang package.
GO=/usr/local/go/bin/go
[ -x "$GO" ] || GO=$(command -v go || true)
[ -n "$GO" ] || { PKGS="$PKGS golang-go"; GO=/usr/bin/go; }
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
# Debian's prometheus package starts a server on :9090; the metrics test runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
	systemctl stop prometheus || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
	systemctl stop nginx || true
fi
if [ -f /run/nginx.pid ] && pgrep -F /run/nginx.pid >/dev/null 2>&1; then
	nginx -s quit 2>/dev/null || true
fi
# GoReplay, built once from the Go module proxy and cached in ~/go/bin, so that the
# tests comparing against it run instead of skipping. A failed build is reported
# here; the tests that need it then FAIL (a Go toolchain is present) rather than skip.
GOREPLAY_VERSION=${GOREPLAY_VERSION:-v1.3.2}
GOREPLAY=${GOREPLAY:-$HOME/go/bin/goreplay}
if [ ! -x "$GOREPLAY" ] && [ -x "$GO" ] && [ "${SETUP_GOREPLAY:-1}" = 1 ]; then
	echo "setup: building GoReplay $GOREPLAY_VERSION (cached in ~/go/bin)"
	if ! (cd / && CGO_ENABLED=1 timeout 900 "$GO" install "github.com/buger/goreplay@$GOREPLAY_VERSION") \
		>/tmp/shadowtap-goreplay-build.log 2>&1; then
		echo "setup: GoReplay build failed: $(tail -1 /tmp/shadowtap-goreplay-build.log)" >&2
	fi
fi
mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
exit 0
