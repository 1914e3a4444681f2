import { posix } from 'node:path';
import { z } from 'zod';
import { artifactFieldSchema } from '../artifacts.js';
import { httpUrlSchema } from '../generations-jobs.js';
import { ipSchema } from './network.js';

/**
 * `chroots`: Alpine Linux installed in a directory of the device and run like a service
 * (docs/chroot.md): the root filesystem comes from a verified tarball (an artifact of the
 * controller, a URL or a file) or from `apk.static`; the agent mounts /proc, /sys, /dev, a fresh
 * /run and the extra binds, installs packages, maps users and groups, starts OpenRC services
 * inside, and hooks start and stop into the host's boot (Asuswrt-Merlin user scripts, OpenRC
 * local.d, a systemd unit). `ensure: absent` tears the chroot down safely.
 */

// No transform to lower case: the section must stay representable as JSON Schema (the API docs); hashes compare case-insensitively.
const sha256Schema = z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be a SHA-256 in hex (64 characters)');

/** An absolute, normalised device path (resolved under --root). */
export const chrootPathSchema = z
  .string()
  .min(2, 'must be an absolute path other than "/"')
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.includes('\0') && !p.includes('\n'), 'must not contain NUL or a line break')
  .refine((p) => posix.normalize(p) === p && !p.endsWith('/'), 'must be normalised (no "..", "//", "." or trailing "/")');


/** A file to download or read, with the hash it must have before anything uses it. */
const verifiedFileSchema = z.union([
  z.object({ url: httpUrlSchema, sha256: sha256Schema }).strict(),
  z.object({ path: chrootPathSchema, sha256: sha256Schema }).strict(),
]);

const apkKeySchema = z
  .object({
    /** File name under /etc/apk/keys, e.g. alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub. */
    name: z.string().regex(/^[A-Za-z0-9@._-]+\.pub$/, 'must be a key file name ending in .pub'),
    pem: z.string().max(8192).includes('BEGIN PUBLIC KEY', { message: 'must be a PEM public key' }),
  })
  .strict();

export const chrootSourceSchema = z.union([
  /**
   * An artifact of the controller's store, by `name@version` or id. The controller replaces the
   * reference with the resolved artifact (id, sha256, size) when it stores the desired state, so
   * the sha256 comes from the store; one given here must be the artifact's.
   */
  z
    .object({ artifact: artifactFieldSchema, sha256: sha256Schema.optional() })
    .strict()
    .superRefine((v, ctx) => {
      if (typeof v.artifact !== 'string' && v.sha256 !== undefined && v.sha256.toLowerCase() !== v.artifact.sha256)
        ctx.addIssue({ code: 'custom', path: ['sha256'], message: `is not the sha256 of artifact ${v.artifact.name}@${v.artifact.version} (${v.artifact.sha256}); leave it out, the controller fills it in` });
    }),
  z.object({ url: httpUrlSchema, sha256: sha256Schema }).strict(),
  z.object({ path: chrootPathSchema, sha256: sha256Schema }).strict(),
  z
    .object({
      /** The apk.static binary for the device's architecture, with its pinned checksum. */
      apkStatic: verifiedFileSchema,
      /** The signing keys apk trusts (apk.static embeds none). */
      keys: z.array(apkKeySchema).min(1, 'needs at least one key: apk refuses unsigned repositories'),
    })
    .strict(),
], { error: 'must be one of {artifact}, {url, sha256}, {path, sha256} or {apkStatic: {url|path, sha256}, keys}' });
export type ChrootSource = z.infer<typeof chrootSourceSchema>;

/** Alpine package names (apk's), optionally with a version constraint. */
const packageSchema = z.string().regex(/^[a-z0-9][a-z0-9+._-]*([<>=~]{1,2}[0-9A-Za-z._-]+)?$/, 'must be an apk package name such as "curl" or "openssl>3"');
/** OpenRC service names (files in /etc/init.d). */
const serviceSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be an OpenRC service name (a file in /etc/init.d)');
const accountNameSchema = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user or group name (lower case, digits, "_", "-")');
const idSchema = z.number().int().min(0).max(4_294_967_294);

export const chrootMountSchema = z
  .object({
    /** A directory (or file) of the device, bound into the chroot. */
    source: chrootPathSchema,
    /** Where it appears inside the chroot (default: the same path). */
    target: chrootPathSchema.optional(),
    readOnly: z.boolean().default(false),
  })
  .strict();

const bootSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }).strict(),
  z
    .object({
      kind: z.literal('merlin'),
      /** The router's JFFS directory holding scripts/ (default /jffs). */
      jffs: chrootPathSchema.default('/jffs'),
      /** The disk mount point post-mount/unmount receive as $1 (default: the mount that holds the chroot). */
      disk: chrootPathSchema.optional(),
    })
    .strict(),
  z.object({ kind: z.literal('openrc') }).strict(),
  z.object({ kind: z.literal('systemd') }).strict(),
]);
export type ChrootBoot = z.infer<typeof bootSchema>;

export const chrootSchema = z
  .object({
    ensure: z.enum(['present', 'absent']).default('present'),
    path: chrootPathSchema.refine((p) => !['/bin', '/dev', '/etc', '/proc', '/sys', '/usr', '/var', '/run', '/tmp', '/boot', '/lib', '/sbin', '/root', '/home'].includes(p), 'must not be a system directory'),
    release: z.string().regex(/^(\d+\.\d+|edge)$/, 'must be an Alpine release such as "3.20" or "edge"').default('3.20'),
    arch: z.enum(['aarch64', 'armv7', 'armhf', 'x86_64', 'x86', 'riscv64', 'ppc64le', 's390x', 'loongarch64']).default('aarch64'),
    /** Required when ensure is present. */
    source: chrootSourceSchema.optional(),
    /** apk repositories (default: main and community of `release` on dl-cdn.alpinelinux.org). */
    repositories: z.array(httpUrlSchema).max(16).optional(),
    packages: z.array(packageSchema).max(500).default([]),
    mounts: z.array(chrootMountSchema).max(64).default([]),
    /** Accounts the chroot must have with these ids (to match the host's, which Alpine's defaults do not). */
    users: z
      .array(z.object({ name: accountNameSchema, uid: idSchema, gid: idSchema, home: chrootPathSchema.optional(), shell: chrootPathSchema.default('/bin/sh') }).strict())
      .max(64)
      .default([]),
    groups: z
      .array(z.object({ name: accountNameSchema, gid: idSchema, members: z.array(accountNameSchema).max(64).default([]) }).strict())
      .max(64)
      .default([]),
    hostname: z
      .string()
      .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a host name')
      .max(253)
      .optional(),
    /** `copy`: the host's /etc/resolv.conf is copied in at every apply and start; or fixed name servers. */
    dns: z.union([z.literal('copy'), z.object({ nameservers: z.array(ipSchema).min(1).max(3), search: z.array(z.string().max(253)).max(6).default([]) }).strict()]).default('copy'),
    /** OpenRC services started inside (in the chroot's default runlevel). */
    services: z.array(serviceSchema).max(64).default([]),
    boot: bootSchema.default({ kind: 'none' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.ensure === 'present' && !c.source) ctx.addIssue({ code: 'custom', path: ['source'], message: 'is required when ensure is "present" (an artifact, url or path with sha256, or apkStatic)' });
    const dupes = (list: string[], field: string) => {
      const seen = new Map<string, number>();
      list.forEach((v, i) => {
        if (seen.has(v)) ctx.addIssue({ code: 'custom', path: [field, i], message: `duplicates ${field}[${seen.get(v)}]` });
        else seen.set(v, i);
      });
    };
    dupes(c.packages, 'packages');
    dupes(c.services, 'services');
    dupes(c.users.map((u) => u.name), 'users');
    dupes(c.groups.map((g) => g.name), 'groups');
    const targets = c.mounts.map((m) => m.target ?? m.source);
    targets.forEach((t, i) => {
      if (['/proc', '/sys', '/dev', '/run'].some((k) => t === k || t.startsWith(`${k}/`))) ctx.addIssue({ code: 'custom', path: ['mounts', i, 'target'], message: 'is mounted by the agent itself (/proc, /sys, /dev, /run); choose another target' });
      const j = targets.indexOf(t);
      if (j !== i) ctx.addIssue({ code: 'custom', path: ['mounts', i, 'target'], message: `duplicates mounts[${j}]` });
    });
    c.mounts.forEach((m, i) => {
      if (m.source === c.path || m.source.startsWith(`${c.path}/`) || c.path.startsWith(`${m.source}/`)) ctx.addIssue({ code: 'custom', path: ['mounts', i, 'source'], message: `must not be the chroot (${c.path}), inside it or above it` });
    });
  });
export type ChrootSpec = z.infer<typeof chrootSchema>;

const chrootNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be a chroot name (lower case, digits, "_", "-", up to 32)');

export const chrootsSectionSchema = z
  .record(chrootNameSchema, chrootSchema, { error: (i) => (i.code === 'invalid_key' ? 'is not a chroot name (lower case letters, digits, "_", "-", up to 32)' : undefined) })
  .superRefine((s, ctx) => {
    const byPath = new Map<string, string>();
    for (const [name, c] of Object.entries(s)) {
      const other = [...byPath].find(([p]) => p === c.path || p.startsWith(`${c.path}/`) || c.path.startsWith(`${p}/`));
      if (other) ctx.addIssue({ code: 'custom', path: [name, 'path'], message: `overlaps chroot "${other[1]}" (${other[0]})` });
      byPath.set(c.path, name);
    }
  });
export type ChrootsSection = z.infer<typeof chrootsSectionSchema>;

/** The apk repositories a chroot uses. */
export function chrootRepositories(c: Pick<ChrootSpec, 'release' | 'repositories'>): string[] {
  if (c.repositories) return c.repositories;
  const v = c.release === 'edge' ? 'edge' : `v${c.release}`;
  return [`https://dl-cdn.alpinelinux.org/alpine/${v}/main`, `https://dl-cdn.alpinelinux.org/alpine/${v}/community`];
}
