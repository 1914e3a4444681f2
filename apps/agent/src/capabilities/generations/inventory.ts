import type { GenerationsInventory } from '@ibex/spec';
import { errorMessage } from '../../common/errors.js';
import type { GenerationsRoot } from './generations-root.js';

/**
 * The generations inventory for the facts: undefined when the device has no generations volume
 * configured (no generations.init/adopt yet) or it cannot be read (logged). Cheap: readlinks,
 * readdirs, mountinfo and one `btrfs property get` per generation; no send, no tree walk.
 */
export async function collectGenerationsInventory(g: GenerationsRoot): Promise<GenerationsInventory | undefined> {
  try {
    return await g.inventory();
  } catch (err) {
    g.log.warn('reading the generations inventory failed', { error: errorMessage(err) });
    return undefined;
  }
}
