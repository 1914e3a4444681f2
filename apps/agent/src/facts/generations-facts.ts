import { generationsInventorySchema, type GenerationsInventory } from '@ibex/spec';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';

/** Reads the inventory; undefined when the device has no generations layout. */
export type GenerationsCollector = () => Promise<GenerationsInventory | undefined>;

/**
 * The generations inventory for the facts, collected again each time facts are (Agent.facts),
 * checked with the schema the controller applies; `current` is the last one collected.
 */
export class GenerationsFacts {
  private last?: GenerationsInventory;

  constructor(
    private readonly collect: GenerationsCollector,
    private readonly log: Logger,
  ) {}

  get current(): GenerationsInventory | undefined {
    return this.last;
  }

  /**
   * Collects again. An inventory the controller would refuse (it ends the stream on bad facts)
   * or a collector that fails leaves the facts without one, and says why in the log.
   */
  async refresh(): Promise<GenerationsInventory | undefined> {
    try {
      const inv = await this.collect();
      if (inv === undefined) return (this.last = undefined);
      const checked = generationsInventorySchema.safeParse(inv);
      if (!checked.success) {
        this.log.warn('the generations inventory is not valid; reporting none', { error: checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
        return (this.last = undefined);
      }
      return (this.last = checked.data);
    } catch (err) {
      this.log.warn('collecting the generations inventory failed; reporting none', { error: errorMessage(err) });
      return (this.last = undefined);
    }
  }
}
