# Helpers for the VM tests. A test is an executable tests/vm/NAME.test that
# exits 0 when it passes; the runner sets DOMUS, IMAGES, BUILD and PAYLOADS.
set -euo pipefail
: "${DOMUS:?}" "${IMAGES:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# guest_cmdline CMD: a kernel command line that makes the default image run CMD.
guest_cmdline() {
	echo "console=ttyS0 quiet domus_cmd=$(printf %s "$1" | base64 -w0)"
}

# run_guest CMD [domus run options...]: boots the cloud kernel with CMD;
# stdout in $work/out, stderr in $work/err, status in $status.
run_guest() {
	local cmd=$1; shift
	status=0
	"$DOMUS" run --kernel "$IMAGES/vmlinuz-cloud" --initrd "$IMAGES/initramfs-cloud.cpio.gz" \
		--memory 256 --cmdline "$(guest_cmdline "$cmd")" "$@" \
		</dev/null >"$work/out" 2>"$work/err" || status=$?
}

expect_out() { grep -qF -- "$1" "$work/out" || { show; fail "guest output lacks '$1'"; }; }
expect_err() { grep -qF -- "$1" "$work/err" || { show; fail "domus stderr lacks '$1'"; }; }
expect_status() { [ "$status" = "$1" ] || { show; fail "exit status $status, expected $1"; }; }
show() {
	echo "--- stdout (last 30 lines)"; tail -n 30 "$work/out" 2>/dev/null
	echo "--- stderr"; cat "$work/err" 2>/dev/null
}
