# Shared by tools/emuhost and tests/guest/mkimage: fetch a Debian kernel
# package (downloaded and extracted, never installed) and work out which
# modules a set of drivers needs, in load order.

# kernel_fetch FLAVOUR DIR: extracts the current linux-image-*-FLAVOUR package
# into DIR/FLAVOUR and prints "DIR/FLAVOUR KERNEL_RELEASE".
kernel_fetch() {
	local flavour=$1 dir=$2 pkg deb rel
	pkg=$(apt-cache depends "linux-image-$flavour" 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	if [ -z "$pkg" ]; then
		# A fresh machine may have no package lists yet.
		apt-get update -q >/dev/null 2>&1 || true
		pkg=$(apt-cache depends "linux-image-$flavour" 2>/dev/null |
			awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	fi
	if [ -z "$pkg" ]; then
		echo "cannot resolve linux-image-$flavour (run apt-get update)" >&2
		return 1
	fi
	rel=${pkg#linux-image-}
	if [ ! -e "$dir/$flavour/.done-$rel" ]; then
		rm -rf "$dir/$flavour" "$dir/dl-$flavour"
		mkdir -p "$dir/$flavour" "$dir/dl-$flavour"
		(cd "$dir/dl-$flavour" && apt-get download -q "$pkg" >/dev/null 2>&1) || {
			echo "apt-get download $pkg failed" >&2
			return 1
		}
		deb=$(ls "$dir/dl-$flavour"/*.deb)
		dpkg-deb -x "$deb" "$dir/$flavour"
		rm -rf "$dir/dl-$flavour"
		depmod -b "$dir/$flavour" "$rel"
		touch "$dir/$flavour/.done-$rel"
	fi
	echo "$dir/$flavour $rel"
}

# modules_closure ROOT RELEASE MODULE...: prints the .ko files the modules
# need, dependencies first, each once; built-in modules print nothing.
modules_closure() {
	local root=$1 rel=$2; shift 2
	local moddir=$root/lib/modules/$rel m line
	for m in "$@"; do
		line=$(grep -E "/${m//-/[-_]}\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" || true)
		if [ -z "$line" ]; then
			grep -qE "/${m//-/[-_]}\.ko" "$moddir/modules.builtin" || {
				echo "module $m is neither a module nor built in" >&2
				return 1
			}
			continue
		fi
		# modules.dep lists a module's dependencies nearest first; load them farthest first.
		for dep in $(echo "${line#*:}" | tr ' ' '\n' | tac) "${line%%:*}"; do
			[ -n "$dep" ] && echo "$moddir/$dep"
		done
	done | awk '!seen[$0]++'
}
