import { posix } from 'node:path';
import { z } from 'zod';
import { httpUrlSchema } from './generations-jobs.js';
import { networkSectionSchema } from './sections/network.js';

/**
 * An initramfs image for an Alpine VM (docs/images.md): a base root filesystem, packages and
 * extra files over it, hostname, users, the network (the network section's schema: the same
 * renderer writes /etc/network/interfaces), OpenRC services per runlevel, kernel modules, the
 * serial console and optionally the Ibex agent with a one-time enrollment token. The controller
 * validates it at the API and the agent before a local build, both with this schema.
 */

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (a sha256)');
/** A path inside the image: absolute, normalised. */
export const imagePathSchema = z
  .string()
  .min(2, 'must be an absolute path inside the image, not /')
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain NUL')
  .refine((p) => posix.normalize(p) === p && !p.endsWith('/'), 'must be normalised (no "..", "//", "." or trailing "/")');
/** A path on the machine that runs the build (controller or hypervisor host). */
const hostPathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path on the build host')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ..');
const id = z.number().int().min(0, 'must be at least 0').max(65_535, 'must be at most 65535');

/**
 * Where bytes come from: an artifact of the artifact store (`name@version` or its id), a path on
 * the build host (its sha256 checked when given) or a URL (sha256 required: it is verified before use).
 */
export const imageSourceSchema = z.union(
  [
    z.object({ artifact: z.string().min(1).max(300).regex(/^[A-Za-z0-9][A-Za-z0-9._@:/-]*$/, 'must be name@version or an artifact id') }).strict(),
    z.object({ path: hostPathSchema, sha256: sha256.optional() }).strict(),
    z.object({ url: httpUrlSchema, sha256 }).strict(),
  ],
  { error: 'must be one of { artifact: "name@version" | id }, { path, sha256? } or { url, sha256 }' },
);
export type ImageSource = z.infer<typeof imageSourceSchema>;

const hostnameSchema = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/, 'must be a host name label (letters, digits and inner "-")');

export const imageFileSchema = z
  .object({
    path: imagePathSchema,
    type: z.enum(['file', 'directory', 'symlink']).default('file'),
    /** file: inline content (utf8 or base64) or a source. */
    content: z.string().max(1 << 20, 'at most 1 MiB inline: use source for larger files').optional(),
    encoding: z.enum(['utf8', 'base64']).default('utf8'),
    source: imageSourceSchema.optional(),
    /** symlink: where it points. */
    target: z.string().min(1).max(4096).optional(),
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'must be an octal mode such as "0644"')
      .optional(),
    uid: id.default(0),
    gid: id.default(0),
  })
  .strict()
  .superRefine((f, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (f.type === 'file' && (f.content === undefined) === (f.source === undefined)) issue('content', 'a file needs exactly one of content or source');
    if (f.type !== 'file' && (f.content !== undefined || f.source !== undefined)) issue('content', `a ${f.type} has no content or source`);
    if (f.type === 'symlink' && f.target === undefined) issue('target', 'a symlink needs a target');
    if (f.type !== 'symlink' && f.target !== undefined) issue('target', `only a symlink has a target (type is ${f.type})`);
    if (f.type === 'symlink' && f.mode !== undefined) issue('mode', 'a symlink has no mode');
    if (f.encoding === 'base64' && f.content !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(f.content)) issue('content', 'is not valid base64');
  });
export type ImageFile = z.infer<typeof imageFileSchema>;

const userNameSchema = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name such as alice (lower case, at most 32 characters)');
/** One OpenSSH public key line; no newline (it would smuggle in a second key or option line). */
const authorizedKeySchema = z
  .string()
  .max(16_384)
  .regex(/^(?:[^\n\r]*[ \t])?(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}([ \t][^\n\r]*)?$/, 'must be one OpenSSH public key line such as "ssh-ed25519 AAAA... alice@laptop"');

export const imageUserSchema = z
  .object({
    name: userNameSchema,
    uid: id,
    /** Primary group id (default: a group named after the user with gid = uid). */
    gid: id.optional(),
    /** Extra groups by name (they must exist in the base's /etc/group or be created by another user entry). */
    groups: z.array(userNameSchema).max(32).default([]),
    home: imagePathSchema.optional(),
    shell: imagePathSchema.default('/bin/sh'),
    /** A crypt(3) hash for /etc/shadow; without one the account has no password (`!`: key login only). */
    passwordHash: z
      .string()
      .max(512)
      .regex(/^\$[0-9a-z]+\$[^:\n]+$/, 'must be a crypt(3) hash such as $6$salt$... (never a plain password)')
      .optional(),
    authorizedKeys: z.array(authorizedKeySchema).max(64).default([]),
  })
  .strict();
export type ImageUser = z.infer<typeof imageUserSchema>;

export const openrcRunlevels = ['sysinit', 'boot', 'default', 'shutdown'] as const;
const serviceNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be an OpenRC service name such as networking or agetty.ttyS0');
/**
 * A service in a runlevel: a name (the link /etc/runlevels/LEVEL/NAME -> /etc/init.d/NAME), or
 * `{ name, of }` for an instance of a multiplexed script (agetty.ttyS0 -> agetty: the link
 * /etc/init.d/agetty.ttyS0 -> agetty is created too).
 */
export const imageServiceSchema = z.union([serviceNameSchema, z.object({ name: serviceNameSchema, of: serviceNameSchema }).strict()]);
export type ImageService = z.infer<typeof imageServiceSchema>;

/** What the Alpine guides link (issue 13, ../shared/research/device-mechanisms.md section 5). */
export const DEFAULT_IMAGE_SERVICES: Record<(typeof openrcRunlevels)[number], ImageService[]> = {
  sysinit: ['devfs', 'mdev', 'hwdrivers'],
  boot: ['procfs', 'sysfs', 'modules', 'hostname'],
  default: ['networking'],
  shutdown: ['killprocs', 'mount-ro'],
};

export const imageSpecSchema = z
  .object({
    /** Names the image (and its artifact): letters, digits, . _ -. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be a plain name (letters, digits, . _ -), at most 100 characters'),
    /** The root filesystem everything else goes over: a directory, or a tar archive (gzip or plain; Alpine's minirootfs). */
    base: imageSourceSchema,
    /** Package archives unpacked over the base in order: Alpine .apk files (a gzip'd tar; their install scripts are NOT run) or any tar. */
    packages: z.array(imageSourceSchema).max(256).default([]),
    files: z.array(imageFileSchema).max(4096).default([]),
    hostname: hostnameSchema,
    users: z.array(imageUserSchema).max(64).default([]),
    /** Written with the network capability's renderer: /etc/network/interfaces + interfaces.d. */
    network: networkSectionSchema.optional(),
    /** Runlevel links; each runlevel given replaces its default (DEFAULT_IMAGE_SERVICES). */
    services: z
      .object(Object.fromEntries(openrcRunlevels.map((l) => [l, z.array(imageServiceSchema).max(128).optional()])) as Record<(typeof openrcRunlevels)[number], z.ZodOptional<z.ZodArray<typeof imageServiceSchema>>>)
      .strict()
      .default({}),
    kernel: z
      .object({
        /** The kernel release the modules are for (`uname -r` of the kernel the VM boots). */
        release: z.string().regex(/^[A-Za-z0-9._+-]{1,100}$/, 'must be a kernel release such as 6.1.0-28-cloud-amd64'),
        /** Where that release's modules are on the build host (default /lib/modules/RELEASE). */
        modulesDir: hostPathSchema.optional(),
        /** Modules to include with everything they depend on (modules.dep), loaded at boot from /etc/modules. */
        modules: z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a module name such as virtio_net')).max(256).default([]),
      })
      .strict()
      .optional(),
    /** The serial console: a login on it (agetty) and its name in /etc/securetty; null for none. */
    console: z
      .object({ device: z.string().regex(/^tty[A-Za-z]+[0-9]+$/, 'must be a tty such as ttyS0'), baud: z.number().int().min(1200).max(4_000_000).default(115_200) })
      .strict()
      .nullable()
      .default({ device: 'ttyS0', baud: 115_200 }),
    /** The program copied to /init (the kernel runs /init as PID 1). */
    init: imagePathSchema.default('/sbin/init'),
    /** The Ibex agent, enrolled on first boot with a one-time token. */
    agent: z
      .object({
        binary: imageSourceSchema,
        /** The controller's gRPC URL as the VM reaches it (QEMU user-mode: grpc://10.0.2.2:PORT). */
        controller: z.string().regex(/^grpcs?:\/\/[^\s/]+$/, 'must be grpc://host:port or grpcs://host:port'),
        /** A one-time enrollment token (ibxe_...): it is written to the image, so anyone holding the image can use it until it is spent. */
        enrollmentToken: z.string().regex(/^ibxe_[A-Za-z0-9_-]{8,200}$/, 'must be an enrollment token (ibxe_...)'),
        /** The device name to enroll as (default: the hostname). */
        deviceName: z.string().min(1).max(100).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const seenFiles = new Map<string, number>();
    s.files.forEach((f, i) => {
      const prev = seenFiles.get(f.path);
      if (prev !== undefined) issue(['files', i, 'path'], `duplicates files[${prev}].path`);
      else seenFiles.set(f.path, i);
    });
    const names = new Map<string, number>();
    const uids = new Map<number, number>();
    s.users.forEach((u, i) => {
      if (u.name === 'root' || u.uid === 0) {
        if (!(u.name === 'root' && u.uid === 0)) issue(['users', i, 'uid'], 'uid 0 is root and root is uid 0');
      }
      if (names.has(u.name)) issue(['users', i, 'name'], `duplicates users[${names.get(u.name)}].name`);
      else names.set(u.name, i);
      if (uids.has(u.uid)) issue(['users', i, 'uid'], `duplicates users[${uids.get(u.uid)}].uid`);
      else uids.set(u.uid, i);
    });
    for (const level of openrcRunlevels) {
      const seen = new Set<string>();
      (s.services[level] ?? []).forEach((svc, i) => {
        const n = typeof svc === 'string' ? svc : svc.name;
        if (seen.has(n)) issue(['services', level, i], `${n} is already in ${level}`);
        seen.add(n);
      });
    }
    if (s.init === '/init') issue(['init'], 'is the program copied to /init; name the original, e.g. /sbin/init');
  });
export type ImageSpec = z.infer<typeof imageSpecSchema>;
export type ImageSpecInput = z.input<typeof imageSpecSchema>;

/** The runlevels with the defaults filled in. */
export function imageRunlevels(s: ImageSpec): Record<(typeof openrcRunlevels)[number], ImageService[]> {
  return Object.fromEntries(openrcRunlevels.map((l) => [l, s.services[l] ?? DEFAULT_IMAGE_SERVICES[l]])) as Record<(typeof openrcRunlevels)[number], ImageService[]>;
}

/** Parameters of the agent's `image.build` job (and of `ibex-agent build-image`). */
export const imageBuildParamsSchema = z
  .object({
    spec: imageSpecSchema,
    /** Where the image goes on the build host (under the agent's --root): FILE.partial until it is complete. */
    out: hostPathSchema.refine((p) => !p.endsWith('/'), 'must name a file'),
  })
  .strict();
export const imageBuildOutputSchema = z.object({
  path: z.string(),
  sha256: z.string(),
  size: z.number().int().min(0),
  entries: z.number().int().min(0),
  warnings: z.array(z.string()),
});
