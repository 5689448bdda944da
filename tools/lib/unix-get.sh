# unix_get SOCKET PATH: the body of domusd's answer to GET PATH on SOCKET,
# for scripts that poll the API. It goes through nc (netcat-openbsd) as
# HTTP/1.0, which loads 6 libraries where curl loads 35: in an emulated host
# a curl costs up to a second of CPU, taken from the guests being waited for.
# A daemon silent for 30 s ends the call (nc -w; not timeout(1), one
# process more per poll), so that a daemon that stops answering fails where
# it is waited for. Returns nc's status.
unix_get() {
	printf 'GET %s HTTP/1.0\r\nHost: d\r\n\r\n' "$2" | nc -N -w 30 -U "$1" 2>/dev/null |
		sed '1,/^\r$/d'
	return "${PIPESTATUS[1]}"
}
