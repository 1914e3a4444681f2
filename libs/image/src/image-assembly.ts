import { readFile, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { renderNetwork } from '@ibex/ifupdown';
import { type ImageSpec, type ImageUser, imageRunlevels, openrcRunlevels } from '@ibex/spec';
import { ImageTree, hostFileData, textFile } from './image-tree.js';
import type { ImageSourceResolver } from './image-source-resolver.js';
import { selectModulesIn } from './kernel-modules.js';
import { addDirectory, addTarFile } from './rootfs-readers.js';

/**
 * Assembles the image tree from a spec, the way the Alpine initramfs guides do it by hand
 * (issue 13; ../shared/research/device-mechanisms.md section 5): base root filesystem, packages,
 * device nodes, /init, securetty, OpenRC runlevel links, /etc/network/interfaces (the network
 * capability's renderer), hostname, users, extra files, kernel modules, and the agent with its
 * enrollment token. Nothing is written to the build host's disk.
 */

export interface AssemblyProgress {
  (step: string, detail?: string): void;
}

export interface AssembledImage {
  tree: ImageTree;
  /** Things that will not stop the build but may stop the VM (e.g. a runlevel link to a service the image lacks). */
  warnings: string[];
}

export const AGENT_BINARY = '/usr/local/bin/ibex-agent';
export const AGENT_CONFIG = '/etc/ibex/agent.json';
export const AGENT_TOKEN = '/etc/ibex/enrollment-token';
export const AGENT_SERVICE = '/etc/init.d/ibex-agent';
export const AGENT_DATA_DIR = '/var/lib/ibex-agent';

/**
 * The agent's OpenRC service in an image: deploy/agent/ibex-agent.openrc plus enrollment on first
 * boot. The token file is removed once the enrollment succeeded (it is single use); a VM
 * restarted from the same image enrolls again only if its token is still unspent.
 */
export const agentOpenrcService = (deviceName: string) => `#!/sbin/openrc-run
# Written by the Ibex image builder (docs/images.md): deploy/agent/ibex-agent.openrc plus the
# enrollment on first boot with the one-time token in ${AGENT_TOKEN}.
name="ibex-agent"
description="Ibex device agent"
: "\${IBEX_DATA_DIR:=${AGENT_DATA_DIR}}"
: "\${IBEX_LOG:=/var/log/ibex-agent.log}"
supervisor="supervise-daemon"
command="${AGENT_BINARY}"
command_args="run --data-dir \${IBEX_DATA_DIR} \${IBEX_OPTS:-}"
respawn_delay=5
respawn_max=0
output_log="\${IBEX_LOG}"
error_log="\${IBEX_LOG}"
retry="TERM/30/KILL/5"

depend() {
	use net dns logger
	after net firewall
	need localmount
}

start_pre() {
	checkpath --directory --mode 0700 --owner root:root "\${IBEX_DATA_DIR}"
	checkpath --file --mode 0600 --owner root:root "\${IBEX_LOG}"
	if [ -f ${AGENT_TOKEN} ] && [ ! -f "\${IBEX_DATA_DIR}/credential.json" ]; then
		ebegin "Enrolling with the controller"
		# A few tries: the network may still be settling (DHCP) on the first boot.
		for try in 1 2 3 4 5 6 7 8 9 10; do
			${AGENT_BINARY} enroll --data-dir "\${IBEX_DATA_DIR}" --token "$(cat ${AGENT_TOKEN})" --name ${shellQuote(deviceName)} && rm -f ${AGENT_TOKEN} && break
			sleep 3
		done
		[ ! -f ${AGENT_TOKEN} ]
		eend $? "enrollment failed; see ${AGENT_BINARY} enroll --help"
	fi
}
`;

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Linux device numbers of the nodes the kernel and the console need before devfs is mounted. */
function consoleNodes(device: string | undefined): Array<{ path: string; major: number; minor: number; mode: number }> {
  const nodes = [
    { path: '/dev/console', major: 5, minor: 1, mode: 0o600 },
    { path: '/dev/null', major: 1, minor: 3, mode: 0o666 },
    { path: '/dev/tty', major: 5, minor: 0, mode: 0o666 },
  ];
  const serial = device && /^ttyS(\d+)$/.exec(device);
  if (serial) nodes.push({ path: `/dev/${device}`, major: 4, minor: 64 + Number(serial[1]), mode: 0o620 });
  return nodes;
}

const modeOf = (m: string | undefined, dflt: number) => (m === undefined ? dflt : parseInt(m, 8));

/** Lines of a colon file (passwd, shadow, group) without those of the given names, plus new ones. */
function mergeColonFile(existing: string | undefined, names: ReadonlySet<string>, lines: string[]): string {
  const kept = (existing ?? '').split('\n').filter((l) => l !== '' && !names.has(l.split(':')[0]!));
  return [...kept, ...lines].join('\n') + '\n';
}

async function addUsers(tree: ImageTree, users: readonly ImageUser[]): Promise<void> {
  if (!users.length) return;
  const names = new Set(users.map((u) => u.name));
  const groupText = await tree.readText('/etc/group');
  const groups = new Map<string, { gid: string; members: string[]; line: string }>();
  for (const l of (groupText ?? '').split('\n').filter(Boolean)) {
    const [n, , gid, members] = l.split(':');
    groups.set(n!, { gid: gid!, members: members ? members.split(',').filter(Boolean) : [], line: l });
  }
  const home = (u: ImageUser) => u.home ?? (u.name === 'root' ? '/root' : `/home/${u.name}`);
  const gidOf = (u: ImageUser) => u.gid ?? u.uid;
  for (const u of users) {
    if (!groups.has(u.name) && u.gid === undefined) groups.set(u.name, { gid: String(u.uid), members: [], line: '' });
    for (const g of u.groups) {
      const grp = groups.get(g);
      if (!grp) throw new Error(`users: ${u.name} is to be in the group ${g}, which the base's /etc/group does not have`);
      if (!grp.members.includes(u.name)) grp.members.push(u.name);
    }
  }
  const passwd = users.map((u) => `${u.name}:x:${u.uid}:${gidOf(u)}:${u.name}:${home(u)}:${u.shell}`);
  const shadow = users.map((u) => `${u.name}:${u.passwordHash ?? '!'}:0:0:99999:7:::`);
  const groupLines = [...groups.entries()].map(([n, g]) => {
    const f = (g.line || `${n}:x:${g.gid}:`).split(':');
    return [f[0], f[1] ?? 'x', f[2], g.members.join(',')].join(':');
  });
  tree.put(textFile('/etc/passwd', mergeColonFile(await tree.readText('/etc/passwd'), names, passwd), 0o644));
  tree.put(textFile('/etc/shadow', mergeColonFile(await tree.readText('/etc/shadow'), names, shadow), 0o640, 0, shadowGid(groups)));
  tree.put(textFile('/etc/group', groupLines.join('\n') + '\n', 0o644));
  for (const u of users) {
    const h = home(u);
    if (!tree.has(h)) tree.mkdirp(posix.dirname(h));
    tree.put({ type: 'directory', path: h, mode: u.name === 'root' ? 0o700 : 0o755, uid: u.uid, gid: gidOf(u) });
    if (u.authorizedKeys.length) {
      tree.put({ type: 'directory', path: `${h}/.ssh`, mode: 0o700, uid: u.uid, gid: gidOf(u) });
      tree.put(textFile(`${h}/.ssh/authorized_keys`, u.authorizedKeys.join('\n') + '\n', 0o600, u.uid, gidOf(u)));
    }
  }
}
// Alpine's /etc/shadow is root:shadow 0640.
const shadowGid = (groups: Map<string, { gid: string }>) => Number(groups.get('shadow')?.gid ?? 0);

export async function assembleImage(spec: ImageSpec, resolver: ImageSourceResolver, progress: AssemblyProgress = () => {}): Promise<AssembledImage> {
  const tree = new ImageTree();
  const warnings: string[] = [];

  progress('base', 'reading the base root filesystem');
  const base = await resolver.resolve(spec.base, 'base');
  const baseCount = base.directory ? await addDirectory(tree, base.path) : await addTarFile(tree, base.path);
  progress('base', `${baseCount} entries`);
  for (const [i, p] of spec.packages.entries()) {
    const pkg = await resolver.resolve(p, `packages[${i}]`);
    if (pkg.directory) await addDirectory(tree, pkg.path);
    else await addTarFile(tree, pkg.path, { skipDotFiles: true });
    progress('packages', `${i + 1}/${spec.packages.length}`);
  }

  // /init: the kernel runs it as PID 1. A hard link to the init program (a symlink stays a
  // symlink): BusyBox picks its applet from the name, and /init's name is still "init".
  const init = tree.get(spec.init);
  if (!init) throw new Error(`init: the image has no ${spec.init} (the base root filesystem needs an init, e.g. busybox or openrc-init)`);
  if (init.type === 'symlink') {
    // Re-aimed from / (a relative target was relative to the init's own directory).
    const target = init.target.startsWith('/') ? init.target : posix.relative('/', posix.join(posix.dirname(spec.init), init.target));
    tree.put({ ...init, path: '/init', target });
  }
  else if (init.type === 'file') tree.put({ type: 'hardlink', path: '/init', of: spec.init });
  else if (init.type === 'hardlink') tree.put({ type: 'hardlink', path: '/init', of: init.of });
  else throw new Error(`init: ${spec.init} is a ${init.type}, not a program`);

  tree.mkdirp('/dev');
  for (const n of consoleNodes(spec.console?.device)) tree.put({ type: 'char', path: n.path, mode: n.mode, uid: 0, gid: 0, major: n.major, minor: n.minor });
  for (const d of ['/proc', '/sys', '/run', '/tmp']) tree.mkdirp(d, d === '/tmp' ? { mode: 0o1777 } : {});
  tree.put({ type: 'directory', path: '/tmp', mode: 0o1777, uid: 0, gid: 0 });

  if (spec.console) {
    const securetty = (await tree.readText('/etc/securetty')) ?? '';
    const ttys = securetty.split('\n').map((l) => l.trim());
    if (!ttys.includes(spec.console.device)) tree.put(textFile('/etc/securetty', (securetty && !securetty.endsWith('\n') ? securetty + '\n' : securetty) + spec.console.device + '\n', 0o644));
  }

  progress('system', 'hostname, network, users');
  tree.put(textFile('/etc/hostname', spec.hostname + '\n'));
  const hosts = await tree.readText('/etc/hosts');
  if (hosts === undefined || !hosts.split(/\s+/).includes(spec.hostname))
    tree.put(textFile('/etc/hosts', (hosts ?? '127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n').replace(/\n?$/, '\n') + `127.0.1.1\t${spec.hostname}\n`));

  if (spec.network) {
    const main = await tree.readText('/etc/network/interfaces');
    const interfacesD = tree
      .entries()
      .filter((e) => e.type === 'file' && posix.dirname(e.path) === '/etc/network/interfaces.d')
      .map((e) => posix.basename(e.path));
    for (const f of renderNetwork(spec.network, { ...(main !== undefined ? { main } : {}), interfacesD }, { sourceDir: '/etc/network/interfaces.d' })) tree.put(textFile(f.path, f.content, f.mode));
  }

  await addUsers(tree, spec.users);

  // OpenRC: /etc/runlevels/LEVEL/NAME -> /etc/init.d/NAME (what rc-update add writes).
  const levels = imageRunlevels(spec);
  const getty = spec.console ? `agetty.${spec.console.device}` : undefined;
  if (getty) levels.default = [...levels.default.filter((s) => (typeof s === 'string' ? s : s.name) !== getty), { name: getty, of: 'agetty' }];
  if (spec.agent) levels.default = [...levels.default.filter((s) => s !== 'ibex-agent'), 'ibex-agent'];
  for (const level of [...openrcRunlevels, 'nonetwork'] as const) tree.mkdirp(`/etc/runlevels/${level}`);
  for (const level of openrcRunlevels) {
    for (const svc of levels[level] ?? []) {
      const name = typeof svc === 'string' ? svc : svc.name;
      if (typeof svc !== 'string') tree.put({ type: 'symlink', path: `/etc/init.d/${name}`, target: svc.of, uid: 0, gid: 0 });
      const script = typeof svc === 'string' ? name : svc.of;
      if (!tree.has(`/etc/init.d/${script}`) && !(spec.agent && script === 'ibex-agent')) warnings.push(`services.${level}: ${name} has no /etc/init.d/${script} in the image; OpenRC will not start it (add the package that ships it)`);
      tree.put({ type: 'symlink', path: `/etc/runlevels/${level}/${name}`, target: `/etc/init.d/${name}`, uid: 0, gid: 0 });
    }
  }

  progress('files', `${spec.files.length} extra files`);
  for (const [i, f] of spec.files.entries()) {
    const own = { uid: f.uid, gid: f.gid };
    if (f.type === 'directory') tree.put({ type: 'directory', path: f.path, mode: modeOf(f.mode, 0o755), ...own });
    else if (f.type === 'symlink') tree.put({ type: 'symlink', path: f.path, target: f.target!, ...own });
    else if (f.content !== undefined) tree.put(textFile(f.path, f.encoding === 'base64' ? Buffer.from(f.content, 'base64') : f.content, modeOf(f.mode, 0o644), f.uid, f.gid));
    else {
      const src = await resolver.resolve(f.source!, `files[${i}].source`);
      if (src.directory) throw new Error(`files[${i}].source: ${f.path} is a file, but its source is a directory`);
      tree.put({ type: 'file', path: f.path, mode: modeOf(f.mode, 0o644), ...own, size: (await stat(src.path)).size, data: hostFileData(src.path) });
    }
  }

  if (spec.kernel) {
    const k = spec.kernel;
    const dir = resolver.hostPath(k.modulesDir ?? `/lib/modules/${k.release}`, 'kernel.modulesDir');
    const sel = await selectModulesIn(dir, k.modules, k.release);
    const root = `/lib/modules/${k.release}`;
    for (const f of sel.files) {
      const st = await stat(join(dir, f));
      tree.put({ type: 'file', path: posix.join(root, f), mode: 0o644, uid: 0, gid: 0, size: st.size, data: hostFileData(join(dir, f)) });
    }
    tree.put(textFile(`${root}/modules.dep`, sel.dep));
    const builtin = await readOptional(join(dir, 'modules.builtin'));
    if (builtin !== undefined) tree.put(textFile(`${root}/modules.builtin`, builtin));
    // OpenRC's `modules` service loads /etc/modules at boot.
    const loaded = k.modules.filter((m) => !sel.builtin.includes(m));
    const existing = (await tree.readText('/etc/modules')) ?? '';
    const missing = loaded.filter((m) => !existing.split('\n').includes(m));
    if (missing.length) tree.put(textFile('/etc/modules', existing.replace(/([^\n])$/, '$1\n') + missing.join('\n') + '\n'));
    progress('modules', `${sel.files.length} module files for ${k.modules.length} requested`);
  }

  if (spec.agent) {
    progress('agent', 'the Ibex agent and its enrollment token');
    const a = spec.agent;
    const bin = await resolver.resolve(a.binary, 'agent.binary');
    if (bin.directory) throw new Error('agent.binary: is a directory; give the agent executable (dist/agent/ibex-agent-linux-x64)');
    tree.put({ type: 'file', path: AGENT_BINARY, mode: 0o755, uid: 0, gid: 0, size: (await stat(bin.path)).size, data: hostFileData(bin.path) });
    tree.put(textFile(AGENT_CONFIG, JSON.stringify({ controller: a.controller, dataDir: AGENT_DATA_DIR }, null, 2) + '\n', 0o644));
    tree.put(textFile(AGENT_TOKEN, a.enrollmentToken + '\n', 0o600));
    tree.put(textFile(AGENT_SERVICE, agentOpenrcService(a.deviceName ?? spec.hostname), 0o755));
    tree.mkdirp(AGENT_DATA_DIR, { mode: 0o700 });
  }
  return { tree, warnings };
}

const readOptional = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);
