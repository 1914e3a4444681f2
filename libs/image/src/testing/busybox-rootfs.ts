import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * A stand-in for Alpine's root filesystem, for the tests: there is no Alpine (no apk, no OpenRC)
 * on this machine, so the base is Debian's static BusyBox (the same BusyBox Alpine uses) with a
 * link per applet, and an rc script run by BusyBox init that does what OpenRC would do with the
 * image: it walks /etc/runlevels/{sysinit,boot,default} in order and starts each linked service
 * it has a stand-in for (devfs, procfs, sysfs, modules, hostname, networking, ibex-agent). The
 * runlevel links themselves are the builder's real output. Then it prints the markers the boot
 * test waits for, and powers off unless `keepRunning`.
 */
export const BUSYBOX = '/bin/busybox';
export const BOOT_MARK = 'IBEX-IMAGE-BOOTED';

export const standinRc = (opts: { keepRunning?: boolean } = {}) => `#!/bin/sh
# OpenRC stand-in (libs/image/src/testing/busybox-rootfs.ts): runs the runlevel links in order.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
svc_devfs() { mount -t devtmpfs devtmpfs /dev 2>/dev/null || true; }
svc_procfs() { mount -t proc proc /proc; }
svc_sysfs() { mount -t sysfs sysfs /sys; }
svc_modules() { [ -f /etc/modules ] && while read -r m; do [ -n "$m" ] && modprobe "$m" && echo "modules: loaded $m"; done < /etc/modules; }
svc_hostname() { hostname -F /etc/hostname; }
svc_networking() { mkdir -p /run /var/run; ifup -a; }
svc_ibex_agent() {
	d=/var/lib/ibex-agent
	if [ -f /etc/ibex/enrollment-token ] && [ ! -f $d/credential.json ]; then
		for try in 1 2 3 4 5 6 7 8 9 10; do
			/usr/local/bin/ibex-agent enroll --data-dir $d --token "$(cat /etc/ibex/enrollment-token)" --name "$(hostname)" && rm -f /etc/ibex/enrollment-token && break
			sleep 3
		done
	fi
	# On the console (not a log file) so a test sees why an agent failed.
	/usr/local/bin/ibex-agent run --data-dir $d --log-format text &
	echo "ibex-agent: started"
}
mount -t tmpfs tmpfs /run
# OpenRC orders a runlevel by the scripts' depend(): the network comes before what uses it
# (the agent's "use net" / "after net"); the stand-in puts networking and net.* first.
ordered() { ls /etc/runlevels/$1 | grep -E '^(networking|net[.])' ; ls /etc/runlevels/$1 | grep -vE '^(networking|net[.])'; }
for level in sysinit boot default; do
	for name in $(ordered $level); do
		link=/etc/runlevels/$level/$name
		[ -L "$link" ] || continue
		fn=svc_$(echo "$name" | tr '.-' '__')
		if type "$fn" >/dev/null 2>&1; then echo "rc: $level/$name"; "$fn"; else echo "rc: $level/$name (no stand-in, skipped)"; fi
	done
done
echo "${BOOT_MARK} hostname=$(hostname)"
ip -o addr show | while read -r n dev fam addr rest; do echo "IBEX-ADDR $dev $fam $addr"; done
${opts.keepRunning ? 'echo "rc: staying up"' : 'poweroff -f'}
`;

/** udhcpc's hook (Alpine's busybox package ships one as /usr/share/udhcpc/default.script; Debian's BusyBox reads /etc/udhcpc/default.script). */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
	deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
	bound|renew)
		ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}"
		[ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
		[ -n "$dns" ] && for s in $dns; do echo "nameserver $s"; done > /etc/resolv.conf
		;;
esac
exit 0
`;

/** Makes the stand-in root in a new temporary directory and returns it. */
export function makeBusyboxRootfs(opts: { keepRunning?: boolean; busybox?: string } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'ibex-image-rootfs-'));
  const put = (p: string, content: string, mode = 0o644) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), content);
    chmodSync(join(root, p), mode);
  };
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(opts.busybox ?? '/usr/bin/busybox', join(root, BUSYBOX));
  chmodSync(join(root, BUSYBOX), 0o755);
  for (const applet of execFileSync('/usr/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (applet === 'bin/busybox') continue;
    mkdirSync(dirname(join(root, applet)), { recursive: true });
    const depth = applet.split('/').length - 1;
    symlinkSync(`${'../'.repeat(depth)}bin/busybox`, join(root, applet));
  }
  for (const d of ['etc/init.d', 'etc/network/if-pre-up.d', 'etc/network/if-up.d', 'etc/network/if-down.d', 'etc/network/if-post-down.d', 'root', 'var/lib', 'var/log', 'usr/local/bin']) mkdirSync(join(root, d), { recursive: true });
  symlinkSync('/run', join(root, 'var/run'));
  put('etc/inittab', '::sysinit:/etc/init.d/openrc-standin\n::shutdown:/bin/umount -a -r\n');
  put('etc/init.d/openrc-standin', standinRc(opts), 0o755);
  // Placeholders for the services the builder links, as Alpine's packages would ship them.
  for (const s of ['devfs', 'procfs', 'sysfs', 'mdev', 'hwdrivers', 'modules', 'hostname', 'networking', 'agetty', 'killprocs', 'mount-ro'])
    put(`etc/init.d/${s}`, `#!/sbin/openrc-run\n# stand-in for Alpine's ${s} service (started by /etc/init.d/openrc-standin)\n`, 0o755);
  put('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  put('etc/shadow', 'root:*:0:0:99999:7:::\n', 0o640);
  put('etc/group', 'root:x:0:root\nshadow:x:42:\nwheel:x:10:root\n');
  put('etc/securetty', 'console\ntty1\n');
  put('usr/share/udhcpc/default.script', UDHCPC_SCRIPT, 0o755);
  // Debian's BusyBox looks for it where Debian's udhcpc package puts it.
  put('etc/udhcpc/default.script', UDHCPC_SCRIPT, 0o755);
  return root;
}
