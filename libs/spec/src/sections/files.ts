import { posix } from 'node:path';
import { z } from 'zod';

/**
 * `files`: whole files the device must have (or must not have). Paths are absolute on the
 * device and resolved under the agent's --root.
 */
export const fileEntrySchema = z
  .object({
    path: z
      .string()
      .min(2)
      .max(4096)
      .refine((p) => p.startsWith('/'), 'must be an absolute path')
      .refine((p) => !p.includes('\0'), 'must not contain NUL')
      .refine((p) => posix.normalize(p) === p && !p.endsWith('/'), 'must be normalised (no "..", "//", "." or trailing "/")'),
    ensure: z.enum(['present', 'absent']).default('present'),
    content: z.string().max(1 << 20, 'at most 1 MiB').optional(),
    encoding: z.enum(['utf8', 'base64']).default('utf8'),
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0644"')
      .default('0644'),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.ensure === 'present' && f.content === undefined) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: 'is required when ensure is "present"' });
    }
    if (f.encoding === 'base64' && f.content !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(f.content)) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: 'is not valid base64' });
    }
  });
export type FileEntry = z.infer<typeof fileEntrySchema>;

export const filesSectionSchema = z
  .object({
    entries: z.array(fileEntrySchema).max(1000),
  })
  .strict()
  .superRefine((s, ctx) => {
    const seen = new Map<string, number>();
    s.entries.forEach((e, i) => {
      const prev = seen.get(e.path);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['entries', i, 'path'], message: `duplicates entries[${prev}].path` });
      else seen.set(e.path, i);
    });
  });
export type FilesSection = z.infer<typeof filesSectionSchema>;
