# Helpers for the VM tests. A test is an executable tests/vm/NAME.test that
# exits 0 when it passes; the runner sets DOMUS, IMAGES, BUILD and PAYLOADS.
set -euo pipefail
: "${DOMUS:?}" "${IMAGES:?}"
# The guests' kernel: Debian's cloud kernel as an ELF vmlinux, entered
# through PVH. The bzImage's own decompressor costs each boot about 2.4 s in
# an emulated host; the tests that check the bzImage path (boot, boot-generic,
# config, badinput, pmem, daemon-xen-example) name vmlinuz-cloud themselves.
GUEST_KERNEL=${GUEST_KERNEL:-$IMAGES/vmlinux-cloud}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fail MESSAGE: the test fails. What domusd and each domain's VMM said last
# goes with it (the work directory, where they are, goes with the test): a
# domain that vanished says why there.
fail() {
	local f
	echo "FAIL: $*" >&2
	if [ -n "${work:-}" ] && [ -s "$work/domusd.log" ]; then
		echo "--- domusd's log ends" >&2
		tail -n 20 "$work/domusd.log" >&2
		for f in "$work"/state/log/*.log; do
			[ -e "$f" ] && [[ $f != *.console.log ]] || continue
			echo "--- ${f##*/} ends" >&2
			tail -n 8 "$f" >&2
		done
	fi
	exit 1
}

# guest_cmdline CMD: a kernel command line that makes the default image run CMD.
# cryptomgr.notests: the guest kernel's crypto self-tests test nothing of
# domus and cost a boot about 0.4 s of its emulated host (5.57 s against
# 5.97, medians of four boots each, 2026-12-07).
guest_cmdline() {
	echo "console=ttyS0 quiet cryptomgr.notests domus_cmd=$(printf %s "$1" | base64 -w0)"
}

# run_guest CMD [domus run options...]: boots the cloud kernel with CMD;
# stdout in $work/out, stderr in $work/err, status in $status.
run_guest() {
	local cmd=$1; shift
	status=0
	"$DOMUS" run --kernel "$GUEST_KERNEL" --initrd "$IMAGES/initramfs-cloud.cpio.gz" \
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

# ---- domusd ----
DOMUSD=${DOMUSD:-$BUILD/src/ctl/domusd}

# start_domusd [domusd options...]: a private domusd on $work/sock, state in
# $work/state; DOMUS_SOCKET points the domus command at it. Its domains'
# consoles are kept in $work/state/log/NAME.console.log too (--console-log),
# which wait_console reads.
start_domusd() {
	export DOMUS_SOCKET=$work/sock
	"$DOMUSD" --socket "$work/sock" --state-dir "$work/state" --console-log "$@" >>"$work/domusd.log" 2>&1 &
	domusd_pid=$!
	for _ in $(seq 100); do
		unix_get "$work/sock" /v1/host | grep -q . && return 0
		kill -0 "$domusd_pid" 2>/dev/null || break
		nap 1
	done
	cat "$work/domusd.log"
	fail "domusd did not come up"
}

stop_domusd() {
	kill "$domusd_pid" 2>/dev/null || true
	wait "$domusd_pid" 2>/dev/null || true
}

# Whatever a test leaves running goes with it.
cleanup_domusd() {
	local f pid
	# Under set -e a failed kill (of what is gone already) would end the trap early.
	[ -z "${domusd_pid:-}" ] || kill -9 "$domusd_pid" 2>/dev/null || true
	for f in "$work"/state/*.domain.json; do
		[ -e "$f" ] || continue
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$f")
		[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
	done
	[ -z "${console_pid:-}" ] || kill "$console_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup_domusd EXIT
# The runner's time limit (SIGTERM): what domusd said and what its
# processes wait for, before the EXIT trap kills them and that is lost.
on_time_limit() {
	local p
	trap - TERM
	echo "--- stopped by the time limit; domusd's log, last lines"
	tail -n 40 "$work/domusd.log" 2>/dev/null || true
	echo "--- processes"
	for p in $(pgrep -f "$work" 2>/dev/null) ${domusd_pid:-}; do
		[ -r "/proc/$p/stat" ] || continue
		echo "$p $(cat "/proc/$p/wchan" 2>/dev/null) $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-160)"
	done
	exit 124
}
trap on_time_limit TERM

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/lib/unix-get.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/lib/stream-wait.sh"
# api URL [curl options...]: domusd's answer; a plain GET through unix_get
# (the tests poll the API every 0.2 s).
api() {
	if [ $# = 1 ] && [[ $1 == http://d/* ]]; then
		unix_get "$work/sock" "${1#http://d}"
		return
	fi
	curl -s --unix-socket "$work/sock" "$@"
}

# The clock, the arithmetic and the checks below start no process: every
# process costs an emulated host a tenth of a second or more.
now_us() { now=${EPOCHREALTIME/./}; } # the clock in microseconds
slurp() { body=; read -r -d '' body <"$1" || true; } # a file's text into $body
# domusd_ms PATH [SECONDS]: GET PATH answered within SECONDS (1), counted by
# curl from the request to the answer (starting curl is not counted); the
# answer in $body, its time in ms in $ms.
domusd_ms() {
	local t frac rc=0 limit=${2:-1}
	curl -sf --max-time "$limit" -o "$work/answer" -w '%{time_total}\n' --unix-socket "$work/sock" \
		"http://d$1" >"$work/time" || rc=$?
	[ "$rc" = 0 ] || fail "GET $1: no answer within $limit s (curl status $rc)"
	read -r t <"$work/time"
	frac=${t#*.}000 # seconds, with 6 decimals or fewer
	ms=$((10#${t%.*} * 1000 + 10#${frac:0:3}))
	slurp "$work/answer"
}

# domain_cfg NAME FILE [extra xl.cfg lines...]: a config for the default
# image with a shell on its console.
domain_cfg() {
	local name=$1 file=$2; shift 2
	{
		echo "# domain $name for a domusd test"
		echo "name = \"$name\""
		echo "kernel = \"$GUEST_KERNEL\""
		echo "ramdisk = \"$IMAGES/initramfs-cloud.cpio.gz\""
		case " $* " in *" memory ="*) ;; *) echo "memory = 192" ;; esac
		echo "extra = \"console=ttyS0 quiet cryptomgr.notests domus_shell=1\""
		for l in "$@"; do echo "$l"; done
	} >"$file"
}

# nap TENTHS: sleeps TENTHS tenths of a second without starting a process
# (read's timeout on a pipe nobody writes), as /bin/sleep costs an emulated
# host as much CPU as a short poll.
exec {nap_fd}<> <(:)
nap() { read -r -t "$(($1 / 10)).$(($1 % 10))" -u "$nap_fd" || true; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds,
# and says how long that took. A poll (an API call and a grep) costs an
# emulated host about 0.3 s of its one CPU, which the guests being waited for
# need: the pause between polls grows from 0.1 s by 0.1 s a poll to 1 s, so
# a long wait polls once a second and a short one still ends early. SECONDS
# counts the pauses, not the polls' own time.
wait_for() {
	local what=$1 tenths=$(($2 * 10)) slept=0 step=1 start=$SECONDS; shift 2
	while :; do
		if "$@" >/dev/null 2>&1; then
			echo "waited $((SECONDS - start)) s for $what"
			return 0
		fi
		((slept < tenths)) || break
		nap "$step"
		slept=$((slept + step))
		((step >= 10)) || step=$((step + 1))
	done
	wait_failed "$what" "$start"
}
# vcpus_look: each domain's vCPUs as domusd sees them (state r or b, CPU time, exits), and
# the end of its console log.
vcpus_look() {
	local d
	for d in $(api http://d/v1/domains 2>/dev/null | jq -r '.domains[]?.name' 2>/dev/null); do
		echo "--- $d's vCPUs at $SECONDS s"
		api "http://d/v1/domains/$d/vcpus" 2>/dev/null | jq -c '.vcpus[]? | {vcpu, state, time_s, exits}' 2>/dev/null || true
		# What the VMM itself wrote of the console: beyond what a test's console client saw, the
		# path to the client stopped, not the guest.
		[ ! -f "$work/state/log/$d.console.log" ] ||
			{ echo "--- the end of $d's console log"; tail -c 240 "$work/state/log/$d.console.log" | tr -d '\r'; echo; }
	done
}
# wait_failed DESCRIPTION START: what explains a wait that ran out, and fail.
wait_failed() {
	# (fail shows the end of domusd's log and of each domain's.)
	# Whether the domains' vCPUs run, spin or wait for an interrupt: two looks, 2 s apart.
	[ ! -S "$work/sock" ] || vcpus_look
	[ ! -S "$work/sock" ] || { nap 20; vcpus_look; }
	# A test may define on_timeout to show what else explains the wait.
	! declare -F on_timeout >/dev/null || on_timeout || true
	fail "timed out after $((SECONDS - $2)) s waiting for $1"
}

# The checks below read the API's answer with bash alone (unix_answer): a
# process started costs an emulated host about 0.07 s of CPU.
console_has() { unix_answer "$work/sock" "/v1/domains/$1/console" && [[ $unix_body =~ $2 ]]; }

# wait_file DESCRIPTION SECONDS FILE REGEX: until a line of FILE (which may
# not exist yet) matches REGEX, read as it grows (stream_wait): no polls.
wait_file() {
	local start=$SECONDS
	if stream_wait "$2" "$4" tail -c +1 -F "$3"; then
		echo "waited $((SECONDS - start)) s for $1"
		return 0
	fi
	echo "--- the end of $3"
	tail -c 1500 "$3" 2>/dev/null | tr -d '\r' | cat -v
	echo
	wait_failed "$1" "$start"
}
# wait_console DESCRIPTION SECONDS NAME REGEX: until the domain's console
# says REGEX, read from its console log (start_domusd's --console-log).
wait_console() { wait_file "$1" "$2" "$work/state/log/$3.console.log" "$4"; }
# The domain's own "state" comes last in its answer (its balloon's is earlier).
domain_state() {
	unix_answer "$work/sock" "/v1/domains/$1" && [[ $unix_body =~ .*\"state\":\"([a-z]*)\" ]] &&
		echo "${BASH_REMATCH[1]}"
}
state_is() { [ "$(domain_state "$1")" = "$2" ]; }
gone() { unix_answer "$work/sock" "/v1/domains/$1" && [ "$unix_code" = 404 ]; }

# console_open NAME: attaches `domus console` to a fifo we type into.
console_open() {
	mkfifo "$work/con-in"
	"$DOMUS" console "$1" <"$work/con-in" >"$work/con-out" 2>"$work/con-err" &
	console_pid=$!
	exec 7>"$work/con-in"
}
console_type() { printf '%s\n' "$1" >&7; }
console_seen() { grep -qaE -- "$1" "$work/con-out"; }
console_close() {
	printf '\035' >&7
	exec 7>&-
	wait "$console_pid" 2>/dev/null || true
	console_pid=
	rm -f "$work/con-in"
}
# alive PID: the process exists and is not a zombie waiting for its parent.
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

# Consoles of several domains at once: con_open NAME, con_type NAME TEXT,
# con_seen NAME REGEX, con_close NAME (output in $work/NAME.con).
declare -A con_fd con_pid
con_open() {
	mkfifo "$work/$1.in"
	"$DOMUS" console "$1" <"$work/$1.in" >"$work/$1.con" 2>"$work/$1.con-err" &
	con_pid[$1]=$!
	exec {fd}>"$work/$1.in"
	con_fd[$1]=$fd
}
con_type() { printf '%s\n' "$2" >&"${con_fd[$1]}"; }
con_seen() { grep -qaE -- "$2" "$work/$1.con"; }
con_close() {
	printf '\035' >&"${con_fd[$1]}"
	exec {con_fd[$1]}>&-
	wait "${con_pid[$1]}" 2>/dev/null || true
	rm -f "$work/$1.in"
}
# con_run NAME TAG COMMAND: runs COMMAND in the domain's shell and waits up to
# 120 s for it; its output lines, prefixed, come after "TAG-begin" and its exit
# status is in "TAG-end STATUS". Sets $out to the output, $rc to the status.
con_run() {
	local name=$1 tag=$2 secs=${CON_RUN_SECS:-120}
	con_type "$name" "echo $tag-\$((0))begin; ( $3 ) 2>&1; echo $tag-end=\$?="
	wait_file "$name: $tag" "$secs" "$work/$name.con" "$tag-end=[0-9]+="
	out=$(sed -n "/$tag-0begin/,/$tag-end=/p" "$work/$name.con" | tr -d '\r' | sed '1d;$d')
	rc=$(grep -aoE "$tag-end=[0-9]+=" "$work/$name.con" | head -1 | tr -dc 0-9)
}

# ---- benchmarks' smoke modes (tests/vm/bench-*.test) ----
# bench_smoke NAME: runs bench/NAME --smoke as a user would; stdout in
# $work/out, stderr in $work/err, status in $status.
bench_smoke() {
	status=0
	"$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bench/$1" --smoke \
		</dev/null >"$work/out" 2>"$work/err" || status=$?
}
# expect_positive WHAT VALUE...: every VALUE is a number above zero (an empty
# one, "-" or 0 is a figure the benchmark did not measure).
expect_positive() {
	local what=$1 v; shift
	for v in "$@"; do
		awk -v v="$v" 'BEGIN { exit !(v ~ /^[0-9]+(\.[0-9]+)?$/ && v + 0 > 0) }' ||
			{ show; fail "$what: '$v' is not a positive number"; }
	done
}
# expect_ratio WHAT VALUE...: every VALUE is a ratio as the benchmarks print
# it; one that rounds to 0.00 is a slow figure, for the benchmark to show.
expect_ratio() {
	local what=$1 v; shift
	for v in "$@"; do
		[[ $v =~ ^[0-9]+\.[0-9]+$ ]] || { show; fail "$what: '$v' is not a ratio"; }
	done
}
