# unix_get SOCKET PATH: the body of domusd's answer to GET PATH on SOCKET,
# for scripts that poll the API. It goes through nc (netcat-openbsd) as
# HTTP/1.0, which loads 6 libraries where curl loads 35: in an emulated host
# a curl costs up to a second of CPU, taken from the guests being waited for.
# The headers are cut off by bash itself: every process started costs an
# emulated host about 0.07 s of CPU (process accounting, 2026-12-07), and a
# poll started three (nc, sed, grep).
# A daemon silent for 30 s ends the call (nc -w; not timeout(1), one
# process more per poll), so that a daemon that stops answering fails where
# it is waited for. Returns nc's status.
unix_get() {
	unix_answer "$1" "$2" || return
	[ -z "$unix_body" ] || printf '%s\n' "$unix_body"
}
# unix_status SOCKET PATH: the HTTP status of domusd's answer to GET PATH.
unix_status() {
	unix_answer "$1" "$2" || return
	echo "$unix_code"
}
# unix_answer SOCKET PATH: GET PATH; the status in $unix_code, the body in
# $unix_body (without its last newline). Returns nc's status.
unix_answer() {
	local answer rc
	# nc's status goes last, on a line of its own.
	answer=$(printf 'GET %s HTTP/1.0\r\nHost: d\r\n\r\n' "$2" | nc -N -w 30 -U "$1" 2>/dev/null
		printf '\n%s' "${PIPESTATUS[1]}")
	rc=${answer##*$'\n'}
	answer=${answer%$'\n'*}
	unix_code= unix_body=
	[[ $answer =~ ^HTTP/1\.[01]\ ([0-9]+) ]] && unix_code=${BASH_REMATCH[1]}
	if [[ $answer == *$'\r\n\r\n'* ]]; then
		unix_body=${answer#*$'\r\n\r\n'}
		unix_body=${unix_body%$'\n'}
	fi
	return "$rc"
}
