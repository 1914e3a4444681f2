#!/bin/sh
# Installs a downloaded ibex-agent binary and the service file for this machine's init system.
#
#   install.sh [--sha256 HEX] [--prefix DIR] [--root DIR] [--init auto|systemd|openrc|none] FILE
#
#   FILE          ibex-agent-linux-x64 or -arm64, or the same with .xz
#   --sha256 HEX  refuse FILE unless its SHA-256 (of FILE as downloaded, .xz included) is HEX
#   --prefix DIR  install to DIR/bin/ibex-agent (default /usr/local)
#   --root DIR    install into the tree at DIR instead of / (an image being built, a test);
#                 no service is enabled there
#   --init NAME   which service file to install (default: detected)
#
# It then prints the `ibex-agent enroll` step. Asuswrt-Merlin has no init system for this: use
# merlin/install-hooks.sh there. POSIX sh.
set -eu

die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Paths end up in service files: letters, digits and . _ / + - only, absolute.
safe_path() {
	case $2 in
		/*) ;;
		*) die "$1 must be an absolute path, got '$2'" ;;
	esac
	case $2 in
		*[!A-Za-z0-9._/+-]*) die "$1 may hold only letters, digits and . _ / + - (it is written into service files), got '$2'" ;;
	esac
}

sha256=
prefix=/usr/local
root=/
init=auto
file=
while [ $# -gt 0 ]; do
	case $1 in
		--sha256 | --prefix | --root | --init)
			[ $# -ge 2 ] || die "$1 needs a value"
			case $1 in
				--sha256) sha256=$2 ;;
				--prefix) prefix=$2 ;;
				--root) root=$2 ;;
				--init) init=$2 ;;
			esac
			shift 2
			;;
		-h | --help) usage ;;
		--) shift; break ;;
		-*) die "unknown option '$1' (see --help)" ;;
		*)
			[ -z "$file" ] || die "give one binary, got '$file' and '$1'"
			file=$1
			shift
			;;
	esac
done
if [ $# -gt 0 ]; then
	[ -z "$file" ] && [ $# -eq 1 ] || die "give one binary"
	file=$1
fi
[ -n "$file" ] || die "give the downloaded binary, e.g. install.sh ibex-agent-linux-x64.xz (see --help)"
[ -f "$file" ] || die "$file does not exist or is not a file"
safe_path --prefix "$prefix"
prefix=${prefix%/}
case $root in /*) ;; *) die "--root must be an absolute path, got '$root'" ;; esac
[ "$root" = / ] || root=${root%/}
case $init in auto | systemd | openrc | none) ;; *) die "--init must be auto, systemd, openrc or none, got '$init'" ;; esac
live=
[ "$root" != / ] || live=1
# Paths inside the target tree; $root is / or has no trailing slash.
at() {
	if [ -n "$live" ]; then printf '%s' "$1"; else printf '%s%s' "$root" "$1"; fi
}
if [ -n "$live" ] && [ "$(id -u)" != 0 ]; then
	die "run as root (it writes $prefix/bin and the service file), or use --root DIR"
fi
here=$(cd "$(dirname "$0")" && pwd)

# 1. The download is what it claims to be.
if [ -n "$sha256" ]; then
	want=$(printf '%s' "$sha256" | tr 'A-F' 'a-f')
	case $want in
		*[!0-9a-f]*) die "--sha256 must be 64 hex digits, got '$sha256'" ;;
	esac
	[ ${#want} -eq 64 ] || die "--sha256 must be 64 hex digits, got ${#want}"
	command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing: install coreutils (or busybox) to verify --sha256"
	got=$(sha256sum <"$file" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		die "SHA-256 mismatch for $file: expected $want, got $got. The download is corrupt or not the release you meant: download it again and check the checksum you were given. Nothing was installed."
	fi
	echo "SHA-256 of $file verified"
fi

bindir=$(at "$prefix/bin")
dest=$bindir/ibex-agent
mkdir -p "$bindir"
tmp=$bindir/.ibex-agent.install.$$
trap 'rm -f "$tmp"' EXIT INT TERM
case $file in
	*.xz)
		command -v xz >/dev/null 2>&1 || die "$file is xz-compressed and xz is missing: install xz (xz-utils), or download the uncompressed binary"
		xz -dc -- "$file" >"$tmp" || die "$file is not a valid .xz file: download it again"
		;;
	*) cp -- "$file" "$tmp" ;;
esac
chmod 755 "$tmp"

# 2. It is an ELF executable, for this machine when installing to /.
magic=$(od -An -tx1 -N4 "$tmp" | tr -d ' \n')
[ "$magic" = 7f454c46 ] || die "$file is not a Linux executable (an HTML error page? a truncated download?): download it again"
case $(od -An -tx1 -j18 -N2 "$tmp" | tr -d ' \n') in
	3e00) arch=x86_64 ;;
	b700) arch=aarch64 ;;
	*) arch=unknown ;;
esac
machine=$(uname -m)
if [ "$arch" = "$machine" ]; then
	if ! version=$("$tmp" version 2>&1); then
		hint=
		if [ -e "$(at /lib/ld-musl-$machine.so.1)" ]; then
			hint=" This is a musl system (Alpine?): the agent is built on glibc; install gcompat and libstdc++ (apk add gcompat libstdc++)."
		fi
		die "$file does not run here: $version.$hint"
	fi
	case $version in
		ibex-agent\ *) ;;
		*) die "$file does not look like ibex-agent (\`version\` printed: $version)" ;;
	esac
elif [ -n "$live" ]; then
	case $machine in
		x86_64) want_file=ibex-agent-linux-x64 ;;
		aarch64 | arm64) want_file=ibex-agent-linux-arm64 ;;
		*) want_file="(none: ibex-agent is built for x86_64 and aarch64)" ;;
	esac
	die "$file is built for $arch but this machine is $machine: download $want_file"
else
	version="ibex-agent for $arch (not run: this machine is $machine)"
fi
mv -f "$tmp" "$dest"
trap - EXIT INT TERM
data=$(at /var/lib/ibex-agent)
mkdir -p "$data"
chmod 700 "$data"

# 3. The service file for the init system that runs the target.
if [ "$init" = auto ]; then
	if [ -d "$(at /run/systemd/system)" ] || { [ -z "$live" ] && [ -d "$(at /etc/systemd/system)" ]; }; then
		init=systemd
	elif [ -x "$(at /sbin/openrc-run)" ] || [ -x "$(at /usr/sbin/openrc-run)" ]; then
		init=openrc
	else
		init=none
	fi
fi

# Copies a shipped file with the default binary path replaced by this install's.
render() {
	IBEX_BIN=$prefix/bin/ibex-agent awk '
		BEGIN { from = "/usr/local/bin/ibex-agent"; to = ENVIRON["IBEX_BIN"] }
		{
			out = ""; rest = $0
			while ((i = index(rest, from)) > 0) { out = out substr(rest, 1, i - 1) to; rest = substr(rest, i + length(from)) }
			print out rest
		}
	' "$1" >"$2.tmp"
	chmod "$3" "$2.tmp"
	mv -f "$2.tmp" "$2"
}

bin_path=$prefix/bin/ibex-agent
start_cmd=
case $init in
	systemd)
		unitdir=$(at /etc/systemd/system)
		mkdir -p "$unitdir" "$(at /etc/ibex)"
		render "$here/ibex-agent.service" "$unitdir/ibex-agent.service" 644
		[ -e "$(at /etc/ibex/agent.env)" ] || render "$here/agent.env" "$(at /etc/ibex/agent.env)" 600
		# Restart backoff needs systemd >= 254 (RestartSteps=); older ones would warn at every reload.
		if [ -n "$live" ] && [ "$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 + 0 }')" -ge 254 ] 2>/dev/null; then
			mkdir -p "$unitdir/ibex-agent.service.d"
			render "$here/restart-backoff.conf" "$unitdir/ibex-agent.service.d/restart-backoff.conf" 644
		fi
		service="systemd unit $unitdir/ibex-agent.service"
		if [ -n "$live" ]; then
			systemctl daemon-reload
			systemctl enable ibex-agent.service >/dev/null 2>&1 || die "systemctl enable ibex-agent.service failed"
			service="$service (enabled)"
		fi
		start_cmd="systemctl start ibex-agent"
		;;
	openrc)
		mkdir -p "$(at /etc/init.d)" "$(at /etc/conf.d)"
		render "$here/ibex-agent.openrc" "$(at /etc/init.d/ibex-agent)" 755
		[ -e "$(at /etc/conf.d/ibex-agent)" ] || render "$here/ibex-agent.confd" "$(at /etc/conf.d/ibex-agent)" 644
		service="OpenRC service $(at /etc/init.d/ibex-agent)"
		if [ -n "$live" ] && command -v rc-update >/dev/null 2>&1; then
			rc-update add ibex-agent default >/dev/null
			service="$service (in runlevel default)"
		fi
		start_cmd="rc-service ibex-agent start"
		;;
	none)
		service="no service file (no systemd or OpenRC found)"
		if [ -d "$(at /jffs/scripts)" ]; then
			service="$service; this looks like Asuswrt-Merlin: use merlin/install-hooks.sh"
		fi
		start_cmd="$bin_path run   (under your own supervisor)"
		;;
esac

echo "installed $dest: $version"
echo "service: $service"
echo "next: enroll this device with an enrollment token (ibxe_...) from the controller, then start it:"
echo "  $bin_path enroll --controller grpc://CONTROLLER_HOST:9090 --token ibxe_...   (grpcs:// with TLS)"
echo "  $start_cmd"
