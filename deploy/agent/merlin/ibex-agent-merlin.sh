#!/bin/sh
# Runs the Ibex agent on Asuswrt-Merlin, where there is no init system to supervise it.
# install-hooks.sh copies this file to /jffs/addons/ibex-agent/ibex-agent.sh, writes agent.conf
# beside it and calls it from the router's event scripts:
#
#   ibex-agent.sh post-mount MOUNTPOINT   start, when MOUNTPOINT is the disk that holds the agent
#   ibex-agent.sh unmount MOUNTPOINT      stop, when it is (before the disk goes away)
#   ibex-agent.sh services-stop           stop (the router is shutting down or rebooting)
#   ibex-agent.sh start | stop | restart | status
#   ibex-agent.sh supervise               the respawn loop `start` runs in the background
#
# POSIX sh; runs under BusyBox ash. agent.conf is read as data, never sourced or evaluated.
set -u

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
conf=${IBEX_MERLIN_CONF:-$(dirname "$self")/agent.conf}
# The shell that runs the background supervisor (tests point it at BusyBox).
shell=${IBEX_MERLIN_SH:-/bin/sh}

# Messages go to the router's syslog and to stderr; the background supervisor has no stderr,
# so it appends them to the agent's log instead.
log() {
	if [ -n "${in_supervisor:-}" ]; then
		printf '%s ibex-agent.sh: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >>"$logfile" 2>/dev/null
	else
		printf 'ibex-agent: %s\n' "$*" >&2
	fi
	logger -t ibex-agent -- "$*" 2>/dev/null || :
}

die() {
	log "$*"
	exit 1
}

mount_point=
bin=
data=
run_dir=/tmp/ibex-agent
args=
stop_timeout=30

read_conf() {
	[ -r "$conf" ] || die "cannot read $conf; run install-hooks.sh again"
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
		key=${line%%=*}
		value=${line#*=}
		case $key in
			mount) mount_point=$value ;;
			bin) bin=$value ;;
			data) data=$value ;;
			run_dir) run_dir=$value ;;
			args) args=$value ;;
			stop_timeout) stop_timeout=$value ;;
			*) log "ignoring unknown setting '$key' in $conf" ;;
		esac
	done <"$conf"
	[ -n "$mount_point" ] || die "$conf sets no mount=; run install-hooks.sh --mount /tmp/mnt/DISK"
	case $stop_timeout in '' | *[!0-9]*) die "stop_timeout in $conf must be a number of seconds, got '$stop_timeout'" ;; esac
	mount_point=$(strip_slash "$mount_point")
	[ -n "$bin" ] || bin=$mount_point/ibex-agent/ibex-agent
	[ -n "$data" ] || data=$mount_point/ibex-agent/data
	supervisor_pidfile=$run_dir/supervisor.pid
	agent_pidfile=$run_dir/agent.pid
	logfile=$data/agent.log
}

strip_slash() {
	case $1 in
		/) printf '%s' / ;;
		*/) printf '%s' "${1%/}" ;;
		*) printf '%s' "$1" ;;
	esac
}

# The pid in a pidfile, when that process is alive.
live_pid() {
	[ -r "$1" ] || return 1
	p=$(cat "$1" 2>/dev/null) || return 1
	case $p in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$p" 2>/dev/null || return 1
	printf '%s' "$p"
}

# The supervisor's pid, when it is alive and really is this script's supervisor (pids get reused).
supervisor_pid() {
	p=$(live_pid "$supervisor_pidfile") || return 1
	cmd=$(tr '\000' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
	case $cmd in *"$self"*supervise*) printf '%s' "$p" ;; *) return 1 ;; esac
}

rotate_log() {
	# Keep the USB disk from filling: one previous log of at most 1 MiB.
	size=$(wc -c <"$logfile" 2>/dev/null) || return 0
	[ "$size" -le 1048576 ] || mv -f "$logfile" "$logfile.1"
}

start() {
	if p=$(supervisor_pid); then
		log "already running (supervisor pid $p)"
		return 0
	fi
	[ -x "$bin" ] || die "$bin is missing or not executable: copy ibex-agent-linux-arm64 (or -x64) there and chmod +x it"
	mkdir -p "$run_dir" "$data" || die "cannot create $run_dir or $data"
	chmod 700 "$data"
	rm -f "$supervisor_pidfile"
	# Detached from the event script, which must return; setsid so that it leaves its session.
	if command -v setsid >/dev/null 2>&1; then
		setsid "$shell" "$self" supervise </dev/null >/dev/null 2>&1 &
	else
		nohup "$shell" "$self" supervise </dev/null >/dev/null 2>&1 &
	fi
	i=0
	while [ "$i" -lt 50 ]; do
		if p=$(supervisor_pid); then
			log "started (supervisor pid $p, log $logfile)"
			return 0
		fi
		sleep 0.1 2>/dev/null || sleep 1
		i=$((i + 1))
	done
	die "the supervisor did not start; try: $shell $self supervise"
}

stop() {
	if ! p=$(supervisor_pid); then
		# No supervisor, but maybe an agent it left behind.
		if a=$(live_pid "$agent_pidfile"); then
			kill -TERM "$a" 2>/dev/null
			wait_gone "$a" || kill -KILL "$a" 2>/dev/null
		fi
		rm -f "$supervisor_pidfile" "$agent_pidfile"
		log "not running"
		return 0
	fi
	agent=$(live_pid "$agent_pidfile") || agent=
	kill -TERM "$p" 2>/dev/null
	if ! wait_gone "$p"; then
		log "did not stop within ${stop_timeout}s; killing it"
		# shellcheck disable=SC2086 # $agent is one pid or empty
		kill -KILL "$p" $agent 2>/dev/null
	fi
	rm -f "$supervisor_pidfile" "$agent_pidfile"
	log "stopped"
}

wait_gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ "$i" -lt "$stop_timeout" ] || return 1
		sleep 1
		i=$((i + 1))
	done
	return 0
}

status() {
	if p=$(supervisor_pid); then
		a=$(live_pid "$agent_pidfile") || a=restarting
		echo "running: supervisor $p, agent $a, data $data"
		return 0
	fi
	echo "stopped"
	return 3
}

supervise() {
	in_supervisor=1
	mkdir -p "$run_dir" "$data"
	echo $$ >"$supervisor_pidfile"
	stopping=
	waiting=
	# A signal interrupts `wait`; pass it on to what we are waiting for (the agent or a sleep).
	trap 'stopping=1; [ -z "$waiting" ] || kill -TERM "$waiting" 2>/dev/null' TERM INT HUP
	delay=5
	while [ -z "$stopping" ]; do
		rotate_log
		started=$(date +%s)
		# args splits on spaces into separate flags, with globbing off: never evaluated.
		set -f
		# shellcheck disable=SC2086
		set -- run --data-dir "$data" $args
		set +f
		"$bin" "$@" </dev/null >>"$logfile" 2>&1 &
		waiting=$!
		echo "$waiting" >"$agent_pidfile"
		wait "$waiting"
		rc=$?
		# After a signal the agent is still finishing its step: wait until it has exited.
		while kill -0 "$waiting" 2>/dev/null; do
			wait "$waiting"
			rc=$?
		done
		waiting=
		rm -f "$agent_pidfile"
		[ -z "$stopping" ] || break
		ran=$(($(date +%s) - started))
		[ "$ran" -lt 60 ] || delay=5
		log "agent exited with status $rc after ${ran}s; restarting in ${delay}s"
		sleep "$delay" &
		waiting=$!
		wait "$waiting"
		waiting=
		delay=$((delay * 2))
		[ "$delay" -le 120 ] || delay=120
	done
	rm -f "$supervisor_pidfile"
}

matches_mount() {
	[ "$(strip_slash "${1:-}")" = "$mount_point" ]
}

cmd=${1:-}
case $cmd in
	post-mount | unmount | services-stop | start | stop | restart | status | supervise) ;;
	*)
		echo "usage: $0 post-mount MOUNTPOINT | unmount MOUNTPOINT | services-stop | start | stop | restart | status" >&2
		exit 2
		;;
esac
read_conf
case $cmd in
	post-mount) if matches_mount "${2:-}"; then start; fi ;;
	unmount) if matches_mount "${2:-}"; then stop; fi ;;
	services-stop) stop ;;
	start) start ;;
	stop) stop ;;
	restart) stop && start ;;
	status) status ;;
	supervise) supervise ;;
esac
