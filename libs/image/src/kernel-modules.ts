import { readFile, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** The name modprobe knows a module file by: `kernel/drivers/net/virtio_net.ko.xz` -> `virtio_net`. */
export const moduleName = (file: string) => posix.basename(file).replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');

export interface ModuleSelection {
  /** Module files relative to the release's directory, dependencies included, in modules.dep order. */
  files: string[];
  /** The modules.dep lines of exactly those files (busybox and kmod modprobe read it). */
  dep: string;
  /** Requested names the kernel has built in (modules.builtin): nothing to copy or load. */
  builtin: string[];
}

/**
 * The requested modules and everything they depend on, from the release's modules.dep (pure:
 * the caller reads the files). Throws naming the module that is neither a module nor built in.
 */
export function selectModules(requested: readonly string[], modulesDep: string, modulesBuiltin: string, release: string): ModuleSelection {
  const deps = new Map<string, string[]>(); // file -> its dependencies
  const byName = new Map<string, string>(); // name -> file
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    deps.set(file, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
    byName.set(moduleName(file), file);
  }
  const builtinNames = new Set(modulesBuiltin.split('\n').filter(Boolean).map(moduleName));
  const chosen = new Set<string>();
  const builtin: string[] = [];
  const add = (file: string) => {
    if (chosen.has(file)) return;
    chosen.add(file);
    for (const d of deps.get(file) ?? []) add(d);
  };
  for (const r of requested) {
    const name = r.replace(/-/g, '_');
    const file = byName.get(name);
    if (file) add(file);
    else if (builtinNames.has(name)) builtin.push(r);
    else throw new Error(`kernel.modules: ${r} is neither a module of ${release} (modules.dep) nor built into it (modules.builtin); check the name with modinfo`);
  }
  const files = [...deps.keys()].filter((f) => chosen.has(f));
  return { files, dep: files.map((f) => `${f}: ${deps.get(f)!.join(' ')}`.trimEnd() + '\n').join(''), builtin };
}

/** Reads modules.dep / modules.builtin of a release directory and selects from them. */
export async function selectModulesIn(dir: string, requested: readonly string[], release: string): Promise<ModuleSelection> {
  try {
    await stat(join(dir, 'modules.dep'));
  } catch {
    throw new Error(`kernel.modulesDir: ${dir} has no modules.dep; install that kernel's modules on the build host (or run depmod ${release}), or set kernel.modulesDir`);
  }
  const dep = await readFile(join(dir, 'modules.dep'), 'utf8');
  const builtin = await readFile(join(dir, 'modules.builtin'), 'utf8').catch(() => '');
  return selectModules(requested, dep, builtin, release);
}
