#!/bin/sh
# Hooks the Ibex agent into Asuswrt-Merlin's user scripts (/jffs/scripts), so that it starts when
# the USB disk that holds it is mounted and stops cleanly before that disk is unmounted or the
# router shuts down.
#
#   install-hooks.sh --mount /tmp/mnt/DISK [--bin PATH] [--data-dir DIR] [--args "FLAGS"]
#                    [--run-dir DIR] [--jffs DIR]
#   install-hooks.sh --uninstall [--jffs DIR]
#
# It copies ibex-agent-merlin.sh to JFFS/addons/ibex-agent/ibex-agent.sh, writes agent.conf beside
# it, and puts one marked block into each of JFFS/scripts/post-mount, unmount and services-stop
# (creating them with #!/bin/sh when missing and making them executable). What else those
# scripts hold (Entware, amtm, your own lines) is left as it is. Running it again updates the
# blocks in place; --uninstall stops the agent and removes exactly the blocks and the addon folder.
# --jffs points it at another directory than /jffs (tests use a scratch one).
#
# POSIX sh; runs under the router's BusyBox ash.
set -eu

BEGIN_MARK='# >>> ibex-agent >>>'
END_MARK='# <<< ibex-agent <<<'
HOOKS='post-mount unmount services-stop'

usage() {
	sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	printf 'install-hooks.sh: %s\n' "$*" >&2
	exit 1
}

# One argument as a single-quoted shell word, safe to paste into a script.
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# Refuses values that could not be stored on one line of agent.conf or a hook script.
one_line() {
	case $2 in
		*'
'*) die "$1 must not contain a line break" ;;
	esac
}

absolute() {
	one_line "$1" "$2"
	case $2 in /*) ;; *) die "$1 must be an absolute path, got '$2'" ;; esac
}

jffs=/jffs
mount_point=
bin=
data=
args=
run_dir=
uninstall=
while [ $# -gt 0 ]; do
	case $1 in
		--jffs | --mount | --bin | --data-dir | --args | --run-dir)
			[ $# -ge 2 ] || die "$1 needs a value"
			case $1 in
				--jffs) jffs=$2 ;;
				--mount) mount_point=$2 ;;
				--bin) bin=$2 ;;
				--data-dir) data=$2 ;;
				--args) args=$2 ;;
				--run-dir) run_dir=$2 ;;
			esac
			shift 2
			;;
		--uninstall) uninstall=1; shift ;;
		-h | --help) usage ;;
		*) die "unknown argument '$1' (see --help)" ;;
	esac
done

absolute --jffs "$jffs"
jffs=${jffs%/}
[ -d "$jffs" ] || die "$jffs does not exist; is the JFFS partition enabled (Administration > System)?"
scripts=$jffs/scripts
addon=$jffs/addons/ibex-agent
ctl=$addon/ibex-agent.sh
here=$(cd "$(dirname "$0")" && pwd)

# Prints FILE with our block put in (install) or taken out (uninstall), every other line as it
# was. An existing block is replaced where it stands; a new one goes right after the #! line,
# ahead of any `exit` further down. The block comes in through the environment (IBEX_BLOCK),
# never pasted into the awk program.
rewrite() {
	file=$1
	mode=$2
	begins=$3
	IBEX_MODE=$mode IBEX_BEGIN=$BEGIN_MARK IBEX_END=$END_MARK IBEX_PRESENT=$begins awk '
		BEGIN {
			install = ENVIRON["IBEX_MODE"] == "install"; present = ENVIRON["IBEX_PRESENT"] == "1"
			b = ENVIRON["IBEX_BEGIN"]; e = ENVIRON["IBEX_END"]; block = ENVIRON["IBEX_BLOCK"]
		}
		NR == 1 && install && !/^#!/ { print "#!/bin/sh"; if (!present) print block }
		$0 == b { if (install) print block; skip = 1; next }
		skip { if ($0 == e) skip = 0; next }
		{ print }
		NR == 1 && install && /^#!/ && !present { print block }
		END { if (install && NR == 0) { print "#!/bin/sh"; print block } }
	' "$file"
}

# Writes FILE with our block in place (install) or without it (uninstall), atomically.
edit_hook() {
	file=$1
	mode=$2
	if [ ! -e "$file" ]; then
		[ "$mode" = install ] || return 0
		: >"$file"
	fi
	begins=$(grep -c -x -F -e "$BEGIN_MARK" "$file" || :)
	ends=$(grep -c -x -F -e "$END_MARK" "$file" || :)
	if [ "$begins" != "$ends" ] || [ "$begins" -gt 1 ]; then
		die "$file has $begins '$BEGIN_MARK' and $ends '$END_MARK' lines; expected at most one of each: fix it by hand, then run again"
	fi
	# Uninstalling leaves a script without our block exactly as it is, mode included.
	if [ "$mode" = uninstall ] && [ "$begins" = 0 ]; then return 0; fi
	tmp=$file.ibex-tmp
	rewrite "$file" "$mode" "$begins" >"$tmp" || {
		rm -f "$tmp"
		exit 1
	}
	chmod 755 "$tmp"
	mv -f "$tmp" "$file"
}

block_for() {
	hook=$1
	q=$(quote "$ctl")
	case $hook in
		post-mount) call="$q post-mount \"\$1\"" ;;
		unmount) call="$q unmount \"\$1\"" ;;
		services-stop) call="$q services-stop" ;;
	esac
	printf '%s\n%s\n%s\n%s' "$BEGIN_MARK" \
		"# Added by ibex-agent install-hooks.sh; remove with install-hooks.sh --uninstall" \
		"if [ -x $q ]; then $call; fi" \
		"$END_MARK"
}

if [ -n "$uninstall" ]; then
	if [ -x "$ctl" ]; then "$ctl" stop || :; fi
	for hook in $HOOKS; do
		edit_hook "$scripts/$hook" uninstall
	done
	rm -rf "$addon"
	echo "removed the ibex-agent blocks from $scripts and $addon"
	echo "the agent's binary and data on the USB disk were left in place"
	exit 0
fi

[ -n "$mount_point" ] || die "--mount is required: the mount point of the USB disk that holds the agent, e.g. --mount /tmp/mnt/sda1"
absolute --mount "$mount_point"
mount_point=${mount_point%/}
[ -n "$bin" ] || bin=$mount_point/ibex-agent/ibex-agent
[ -n "$data" ] || data=$mount_point/ibex-agent/data
[ -n "$run_dir" ] || run_dir=/tmp/ibex-agent
absolute --bin "$bin"
absolute --data-dir "$data"
absolute --run-dir "$run_dir"
one_line --args "$args"
[ -r "$here/ibex-agent-merlin.sh" ] || die "$here/ibex-agent-merlin.sh is missing: run install-hooks.sh from the deploy/agent/merlin folder it came in"

mkdir -p "$scripts" "$addon"
cp "$here/ibex-agent-merlin.sh" "$ctl.ibex-tmp"
chmod 755 "$ctl.ibex-tmp"
mv -f "$ctl.ibex-tmp" "$ctl"
{
	echo '# Read by ibex-agent.sh as key=value lines (not a shell script). Written by install-hooks.sh.'
	printf 'mount=%s\n' "$mount_point"
	printf 'bin=%s\n' "$bin"
	printf 'data=%s\n' "$data"
	printf 'run_dir=%s\n' "$run_dir"
	printf 'args=%s\n' "$args"
	printf 'stop_timeout=%s\n' 30
} >"$addon/agent.conf.ibex-tmp"
mv -f "$addon/agent.conf.ibex-tmp" "$addon/agent.conf"

for hook in $HOOKS; do
	IBEX_BLOCK=$(block_for "$hook")
	export IBEX_BLOCK
	edit_hook "$scripts/$hook" install
done

# Merlin runs /jffs/scripts only with this setting on; not when aimed at a scratch directory.
if [ "$jffs" = /jffs ] && command -v nvram >/dev/null 2>&1 && [ "$(nvram get jffs2_scripts 2>/dev/null)" != 1 ]; then
	nvram set jffs2_scripts=1
	nvram commit
	echo "enabled custom scripts (nvram jffs2_scripts=1)"
fi

echo "installed the ibex-agent hooks into $scripts (post-mount, unmount, services-stop)"
echo "next:"
echo "  1. copy ibex-agent-linux-arm64 to $bin and chmod +x it"
echo "  2. enroll:  $(quote "$bin") enroll --data-dir $(quote "$data") --controller grpc://HOST:9090 --token ibxe_..."
echo "  3. start:   $(quote "$ctl") start   (from now on it starts whenever $mount_point is mounted)"
