# stream_wait SECONDS REGEX COMMAND...: reads what COMMAND writes (a stream:
# `tail -c +1 -F FILE`, a console) until a line matches the extended REGEX
# or SECONDS pass. Returns 0 when a line matched (it is in $stream_line), 1
# when the time ran out. Nothing polls: bash waits in one read on grep,
# which sees the lines as they come. In an emulated host a poll (an API call
# or a grep, and a pause) costs 0.1 to 0.3 s of CPU, taken from the guests
# being waited for; a wait here costs COMMAND and a grep once.
# A stream that ends before its line (a file not there yet, a console that
# closed as its domain rebooted) is read again after a pause, from its start.
# COMMAND's stdin is a pipe that never has data, so a console client reads
# no end of input and stays attached.
exec {stream_idle_fd}<> <(:)
stream_wait() {
	local secs=$1 re=$2 deadline left src src_pid grep_fd grep_pid rc
	shift 2
	deadline=$((SECONDS + secs))
	stream_line=
	while left=$((deadline - SECONDS)); ((left > 0)); do
		exec {src}< <(exec "$@" <&"$stream_idle_fd" 2>/dev/null)
		src_pid=$!
		exec {grep_fd}< <(exec grep -m 1 -aE -- "$re" <&"$src")
		grep_pid=$!
		rc=0
		IFS= read -r -t "$left" -u "$grep_fd" stream_line || rc=$?
		kill "$src_pid" "$grep_pid" 2>/dev/null || true
		exec {src}<&- {grep_fd}<&-
		[ "$rc" != 0 ] || return 0
		((rc <= 128)) || return 1 # the time ran out
		# The stream ended without the line: once more, after a pause.
		read -r -t 1 -u "$stream_idle_fd" || true
	done
	return 1
}
