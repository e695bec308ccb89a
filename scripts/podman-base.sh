#!/bin/sh
# Build Debian bookworm base images with debootstrap and import them into podman under
# the names deploy/docker/Dockerfile uses (docker.io/library/debian:bookworm and
# :bookworm-slim), so the image can be built on a machine that cannot reach Docker Hub.
# Safe to run again: it does nothing when both images already exist (FORCE=1 rebuilds).
#
# Also writes /etc/containers/containers.conf (only when absent or written by this
# script) so that podman uses runc with cgroupfs and default ulimits the shell can grant:
# podman's built-in default (nofile 1048576) fails where the hard limit is lower.
set -eu

SUITE=bookworm
FULL=docker.io/library/debian:$SUITE
SLIM=docker.io/library/debian:$SUITE-slim
CACHE=${PODMAN_BASE_CACHE:-/var/cache/shadowtap-podman-base}
CONF=/etc/containers/containers.conf
MARK="# written by shadowtap scripts/podman-base.sh"

log() { printf 'podman-base: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap, podman import)"; exit 1; }

need=""
for p in podman debootstrap runc uidmap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	log "installing$need"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null; }
fi

write_conf() {
	nofile=$(ulimit -Hn)
	[ "$nofile" = unlimited ] && nofile=1048576
	[ "$nofile" -gt 65536 ] && nofile=65536
	mkdir -p /etc/containers
	cat > "$CONF.tmp" <<EOF
$MARK
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	mv "$CONF.tmp" "$CONF"
}
if [ ! -e "$CONF" ] || head -n 1 "$CONF" | grep -qF "$MARK"; then
	write_conf
else
	log "$CONF exists and is not ours; leaving it (pass --runtime runc --cgroup-manager cgroupfs yourself)"
fi

if [ "${FORCE:-0}" != 1 ] && podman image exists "$FULL" && podman image exists "$SLIM"; then
	log "$FULL and $SLIM already present"
	exit 0
fi

# The mirror apt already uses here is the one known to be reachable.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
	sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}//p' |
	awk '{print $1}' | grep -E '/debian/?$' | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
	sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}//p' |
	awk '{print $1}' | grep -E '/debian-security/?$' | head -n 1)
log "mirror $mirror${security:+, security $security}"

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs

if [ "${FORCE:-0}" = 1 ] || [ ! -s "$CACHE/$SUITE.tar" ]; then
	log "debootstrap $SUITE (minbase) into $root"
	debootstrap --variant=minbase "$SUITE" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

	{
		echo "deb $mirror $SUITE main"
		echo "deb $mirror $SUITE-updates main"
		[ -n "$security" ] && echo "deb $security $SUITE-security main"
	} > "$root/etc/apt/sources.list"
	# Same apt tolerance as the host (snapshot mirrors carry old Release dates).
	for f in /etc/apt/apt.conf.d/99artifact-registry; do
		[ -f "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/"
	done
	cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
	: > "$root/etc/hostname"
	rm -f "$root/etc/machine-id" && : > "$root/etc/machine-id"
	tar --numeric-owner -C "$root" -cf "$CACHE/$SUITE.tar.tmp" .
	mv "$CACHE/$SUITE.tar.tmp" "$CACHE/$SUITE.tar"

	# -slim as Debian publishes it: no docs, man pages or locales, and dpkg told to
	# keep them out of later installs.
	cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
	find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
		"$root"/usr/share/groff/* "$root"/usr/share/lintian/*
	tar --numeric-owner -C "$root" -cf "$CACHE/$SUITE-slim.tar.tmp" .
	mv "$CACHE/$SUITE-slim.tar.tmp" "$CACHE/$SUITE-slim.tar"
fi

for pair in "$SUITE.tar $FULL" "$SUITE-slim.tar $SLIM"; do
	set -- $pair
	log "podman import $1 as $2"
	podman import -q --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$CACHE/$1" "$2" >/dev/null
done
podman image exists "$FULL" && podman image exists "$SLIM"
log "ready: $FULL $SLIM"
