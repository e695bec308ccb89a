#!/bin/bash
# Live kernel capture on lo: runs build/tests/test_capture_live (make bpf-tests), which
# opens the capture on lo:18080, sends a 256 KiB write and a 100 KiB response through
# a local TCP connection and checks every byte is captured exactly once (GSO segments
# split into several ring events, lo's duplicate copy skipped), the stats pin and its
# removal. Reports one PASS/FAIL/SKIP line per cmocka test. Run as root from the repo root.
BIN=${BIN:-build/tests/test_capture_live}
PIN=/sys/fs/bpf/shadowtap/stats
OUT=$(mktemp /tmp/st_bpf_live.XXXXXX)
pin_existed=0
[ -e "$PIN" ] && pin_existed=1

cleanup() {
	rm -f "$OUT"
	# a crashed run must not leave its pin behind; never touch one that was there
	if [ "$pin_existed" = 0 ] && [ -e "$PIN" ]; then
		rm -f "$PIN"
		rmdir /sys/fs/bpf/shadowtap 2>/dev/null
	fi
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: bpf_live (needs root)"
	exit 0
fi
if [ ! -x "$BIN" ]; then
	echo "SKIP: bpf_live ($BIN not built: make bpf-tests)"
	exit 0
fi
if [ "$pin_existed" = 1 ]; then
	echo "SKIP: bpf_live ($PIN exists: another shadowtap is running)"
	exit 0
fi

timeout 60 "$BIN" >"$OUT" 2>&1
rc=$?
seen=0
while read -r line; do
	case "$line" in
	"[       OK ] "*)
		echo "PASS: bpf_live_${line#\[       OK \] }"; seen=1 ;;
	"[  FAILED  ] "*" test(s), listed below:"*) ;;
	"[  FAILED  ] "*)
		name=${line#\[  FAILED  \] }
		why=$(grep -m1 -E 'error:|Failure' "$OUT" | tr -d '\n' | cut -c1-160)
		echo "FAIL: bpf_live_$name (${why:-see test output})"; seen=1 ;;
	"[  SKIPPED ] "*" test(s), listed below:"*) ;;
	"[  SKIPPED ] "*)
		name=${line#\[  SKIPPED \] }
		why=$(grep -m1 '^SKIP:' "$OUT" | sed 's/^SKIP: //')
		echo "SKIP: bpf_live_$name (${why:-skipped})"; seen=1 ;;
	esac
done < <(grep -E '^\[ +(OK|FAILED|SKIPPED) +\] ' "$OUT" | sort -u -k3)

if [ "$seen" = 0 ]; then
	echo "FAIL: bpf_live (test tool exited $rc without results: $(tail -n1 "$OUT"))"
fi
if [ -e "$PIN" ]; then
	echo "FAIL: bpf_live_pin_removed ($PIN still present after the run)"
else
	echo "PASS: bpf_live_pin_removed"
fi
exit 0
