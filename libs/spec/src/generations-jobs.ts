import { z } from 'zod';
import { generationsInventorySchema } from './generations-inventory.js';

/**
 * Parameters of the generations jobs (btrfs read-only root with atomic upgrades). Shared by the
 * controller (refuses bad params at the API, naming the field) and the agent.
 */
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (the sha256 of the artifact)');
/** An absolute path on the device (under the agent's --root), never with `..`. */
export const generationsDevicePathSchema = z.string().min(2).max(4096).startsWith('/', 'must be an absolute path on the device').refine((p) => !p.split('/').includes('..'), 'must not contain ..');
/** An http:// or https:// URL (image sources use it too). */
export const httpUrlSchema = z
  .string()
  .max(4096)
  .refine((u) => {
    try {
      return ['http:', 'https:'].includes(new URL(u).protocol);
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL');
/** A program and its arguments; never a shell string. */
export const argvSchema = z.array(z.string().max(4096)).min(1, 'must name a program').max(256);
/** A plain subvolume or generation name: it becomes one path component. */
const plainName = z.string().regex(/^[A-Za-z0-9@][A-Za-z0-9@._-]{0,127}$/, 'must be a plain name (letters, digits, @ . _ -)');

export const healthSettingsSchema = z
  .object({
    /** After the switch (or the boot into it) the agent must reach the controller within this long. */
    deadlineSec: z.number().int().min(1).max(86_400).optional(),
    /** Boots of a trial generation before the agent switches back. */
    boots: z.number().int().min(1).max(10).optional(),
    /** Extra checks, each an argv; exit 0 = healthy. */
    checks: z.array(argvSchema).max(32).optional(),
    /** Commit the trial only after the device booted it (reaching the controller before the reboot does not count). */
    requireBoot: z.boolean().optional(),
  })
  .strict();

/** An image for a new generation: a tarball or a `btrfs send` stream, by device path or URL, always with its sha256. */
export const generationImageSchema = z
  .object({
    kind: z.enum(['tarball', 'sendStream']),
    path: generationsDevicePathSchema.optional(),
    url: httpUrlSchema.optional(),
    sha256,
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.path === undefined) === (v.url === undefined)) ctx.addIssue({ code: 'custom', path: ['path'], message: 'give exactly one of path or url' });
  });

export const generationsInitParamsSchema = z
  .object({
    /** Where the btrfs top level (subvolid=5) is mounted on the device, e.g. /vol/root. */
    volume: generationsDevicePathSchema,
    /** Fallback slots in each links directory (the wiki: 3, i.e. links 0..3). */
    fallbacks: z.number().int().min(0).max(16).optional(),
    commons: z.array(plainName).max(64).default([]),
    /** fstab template with CURRENT_SNAPSHOTS_PATH. */
    fstab: z.string().max(65_536).optional(),
    /** The first generation's root; `empty` makes an empty subvolume. */
    image: z.union([z.object({ kind: z.literal('empty') }).strict(), generationImageSchema]),
    health: healthSettingsSchema.optional(),
  })
  .strict();

export const generationsAdoptParamsSchema = z
  .object({
    volume: generationsDevicePathSchema,
    fallbacks: z.number().int().min(0).max(16).optional(),
    health: healthSettingsSchema.optional(),
  })
  .strict();

const imageFields = {
  path: generationsDevicePathSchema.optional(),
  url: httpUrlSchema.optional(),
  sha256: z.string({ error: (i) => (i.input === undefined ? 'required: the artifact is verified before it is used' : undefined) }).regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (the sha256 of the artifact)'),
};

/** Where a new generation comes from: a snapshot of the current one changed by commands, or an image (like init's `image`). */
export const generationSourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('commands') }).strict(),
  z.object({ kind: z.literal('tarball'), ...imageFields }).strict(),
  z.object({ kind: z.literal('sendStream'), ...imageFields }).strict(),
]);

export const generationsUpgradeParamsSchema = z
  .object({
    /** `{kind: 'commands'}`: snapshot the current generation and run `commands` in a chroot of the copy. */
    from: generationSourceSchema,
    /** Run in order in a chroot of the new root (proc, sys, dev mounted in a private namespace). */
    commands: z.array(argvSchema).max(256).default([]),
    /** Trial until the health check passes (default); false marks it good at once. */
    trial: z.boolean().default(true),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.from.kind === 'commands') {
      if (v.commands.length === 0) ctx.addIssue({ code: 'custom', path: ['commands'], message: 'an upgrade from commands needs at least one command' });
      return;
    }
    if ((v.from.path === undefined) === (v.from.url === undefined)) ctx.addIssue({ code: 'custom', path: ['from', 'path'], message: `give exactly one of path or url for a ${v.from.kind}` });
  });

export const generationsGcParamsSchema = z
  .object({
    /** Also keep this many of the newest unprotected complete generations. */
    keep: z.number().int().min(0).max(64).default(0),
  })
  .strict();

export const generationsBootEntriesParamsSchema = z
  .object({
    title: z.string().min(1).max(200).regex(/^[^"'\n\\]*$/, 'must not contain quotes, backslashes or newlines').default('Alpine Linux'),
    /** `root=UUID=` of the btrfs volume. */
    rootUuid: z.string().regex(/^[0-9A-Fa-f-]{8,64}$/, 'must be a filesystem UUID'),
    /** rEFInd's `volume` (the wiki: the partition label ROOT). */
    volumeLabel: z.string().min(1).max(64).regex(/^[^"\n\\]*$/, 'must not contain quotes, backslashes or newlines').default('ROOT'),
    kernel: z.string().startsWith('/').max(256).regex(/^[^\s"]*$/, 'must not contain spaces or quotes').default('/boot/vmlinuz-lts'),
    initrd: z.string().startsWith('/').max(256).regex(/^[^\s"]*$/, 'must not contain spaces or quotes').default('/boot/initramfs-lts'),
    options: z.string().max(1000).regex(/^[^"\n\\]*$/, 'must not contain quotes, backslashes or newlines').default(''),
  })
  .strict();
export const generationsBootEntriesOutputSchema = z.object({
  refind: z.string(),
  grub: z.string(),
  systemdBoot: z.array(z.object({ file: z.string(), text: z.string() })),
});

export const generationsUpgradeOutputSchema = z.object({ id: z.string(), from: z.string(), inventory: generationsInventorySchema });
export const generationsGcOutputSchema = z.object({
  deleted: z.array(z.string()),
  kept: z.array(z.object({ id: z.string(), why: z.array(z.string()) })),
  removedLinks: z.array(z.string()),
  inventory: generationsInventorySchema,
});
