import { join } from 'node:path';
import type { ImageSpec } from '@ibex/spec';
import { type ImageBuildProgress, LocalImageSourceResolver, buildImageToFile } from '@ibex/image';
import type { JobHandlers } from '../../jobs/job-handlers.js';

/**
 * Builds a VM initramfs on this host (a hypervisor host): the same builder the controller runs
 * (libs/image). Spec paths and `out` are under the agent's --root. Artifacts are not resolved
 * here (the controller's artifact store has them): a spec naming one is refused with its field.
 */
export async function buildImageHere(spec: ImageSpec, out: string, root: string, onProgress: (p: ImageBuildProgress) => void, signal?: AbortSignal) {
  const resolver = new LocalImageSourceResolver({ root });
  const file = root === '/' ? out : join(root, out);
  try {
    signal?.throwIfAborted();
    const r = await buildImageToFile(spec, resolver, file, { onProgress });
    return { path: out, ...r };
  } finally {
    await resolver.close();
  }
}

export function imageJobHandlers(root: string): Pick<JobHandlers, 'image.build'> {
  return {
    'image.build': async (p, ctx) => {
      let last = '';
      const r = await buildImageHere(
        p.spec,
        p.out,
        root,
        (pr) => {
          ctx.progress(pr.percent, pr.detail ? `${pr.step}: ${pr.detail}` : pr.step);
          if (pr.step !== 'archive' && pr.step !== last) ctx.log('info', `${pr.step}${pr.detail ? `: ${pr.detail}` : ''}`);
          last = pr.step;
        },
        ctx.signal,
      );
      for (const w of r.warnings) ctx.log('warn', w);
      return r;
    },
  };
}
