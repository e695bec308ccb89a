#!/usr/bin/env bash
# `make install` / `make uninstall` into a DESTDIR: the binary, the unit (ExecStart
# following PREFIX), the sysusers file and a commented /etc/default/shadowtap; an
# edited /etc/default/shadowtap is neither overwritten nor removed.
set -u
. "$(dirname "$0")/lib.sh"
D=$ST_TMP/dest
mk() { make -C "$ST_ROOT" --no-print-directory -s "$@" DESTDIR="$D" PREFIX=/opt/st >"$ST_TMP/make.log" 2>&1; }
mk install || { fail "make install: $(tail -n 2 "$ST_TMP/make.log")"; exit 0; }
files=$(cd "$D" && find . -type f | sort | paste -sd' ')
want="./etc/default/shadowtap ./opt/st/bin/shadowtap ./opt/st/lib/systemd/system/shadowtap.service ./opt/st/lib/sysusers.d/shadowtap.conf"
[ "$files" = "$want" ] && pass "make install puts binary, unit, sysusers and /etc/default/shadowtap in place" \
	|| fail "make install files: $files (want $want)"
grep -q '^ExecStart=/opt/st/bin/shadowtap ' "$D/opt/st/lib/systemd/system/shadowtap.service" \
	&& pass "unit's ExecStart follows PREFIX" || fail "unit's ExecStart: $(grep ExecStart= "$D/opt/st/lib/systemd/system/shadowtap.service")"
# every SHADOWTAP_ name in the example is an option the agent knows
bad=""
for v in $(grep -oE '^#?SHADOWTAP_[A-Z_]+' "$D/etc/default/shadowtap" | tr -d '#' | sort -u); do
	opt=--$(echo "${v#SHADOWTAP_}" | tr 'A-Z_' 'a-z-')
	"$ST_BIN" --help 2>&1 | grep -q -- "$opt\b" || bad="$bad $v"
done
[ -z "$bad" ] && pass "every SHADOWTAP_ variable in /etc/default/shadowtap is an option in --help" \
	|| fail "unknown variables in the example:$bad"
echo "SHADOWTAP_PORT=8080" >> "$D/etc/default/shadowtap"
mk install
grep -q '^SHADOWTAP_PORT=8080' "$D/etc/default/shadowtap" && [ -e "$D/etc/default/shadowtap.example" ] \
	&& pass "reinstall keeps an edited /etc/default/shadowtap (new example beside it)" \
	|| fail "reinstall overwrote /etc/default/shadowtap or wrote no example"
mk uninstall || fail "make uninstall: $(tail -n 2 "$ST_TMP/make.log")"
left=$(cd "$D" && find . -type f | sort | paste -sd' ')
[ "$left" = "./etc/default/shadowtap" ] && pass "make uninstall removes everything but the edited settings" \
	|| fail "after uninstall: $left"
