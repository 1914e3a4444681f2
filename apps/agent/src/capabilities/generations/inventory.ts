import type { GenerationsInventory } from '@ibex/spec';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { SystemAdapter } from '../../system/system-adapter.js';
import { GenerationsManager } from './generations-manager.js';

/**
 * The generations inventory for the facts: undefined when the device has no generations volume
 * configured (no generations.init/adopt yet) or it cannot be read (logged). Cheap: readlinks,
 * readdirs, mountinfo and one `btrfs property get` per generation; no send, no tree walk.
 */
export async function collectGenerationsInventory(opts: { root: string; sys: SystemAdapter; log: Logger }): Promise<GenerationsInventory | undefined> {
  try {
    return await new GenerationsManager(opts).inventory();
  } catch (err) {
    opts.log.warn('reading the generations inventory failed', { error: errorMessage(err) });
    return undefined;
  }
}
