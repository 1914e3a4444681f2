import type { JobHandlers } from '../../jobs/job-handlers.js';
import { renderGrub, renderRefind, renderSystemdBoot } from './boot-entries.js';
import { gc } from './gc.js';
import type { GenerationsRoot } from './generations-root.js';
import { adopt, init } from './init-adopt.js';
import { rollback } from './rollback.js';
import type { TrialMonitor } from './trial-monitor.js';
import { upgrade } from './upgrade.js';

type GenerationsJob = 'generations.init' | 'generations.adopt' | 'generations.upgrade' | 'generations.gc' | 'generations.rollback' | 'generations.bootEntries';

/**
 * The generations job handlers. `changed` is called after anything that changes the generations
 * (the agent sends fresh facts with the inventory at once).
 */
export function generationsJobHandlers(g: GenerationsRoot, trial: TrialMonitor, changed: () => void): Pick<JobHandlers, GenerationsJob> {
  return {
    'generations.init': async (p, ctx) => {
      ctx.progress(0, `initialising ${p.volume}`);
      const inv = await init(g, { volume: p.volume, fallbacks: p.fallbacks, commons: p.commons, fstab: p.fstab, image: p.image, health: p.health }, (pc, msg) => ctx.progress(pc, msg), ctx.signal);
      ctx.log('info', `initialised ${p.volume}: generation ${inv.current}`);
      changed();
      return inv;
    },
    'generations.adopt': async (p, ctx) => {
      ctx.progress(0, `reading the layout on ${p.volume}`);
      const inv = await adopt(g, { volume: p.volume, fallbacks: p.fallbacks, health: p.health });
      ctx.log('info', `adopted ${p.volume}: current ${inv.current}, ${inv.generations.length} generation(s)`);
      changed();
      return inv;
    },
    'generations.upgrade': async (p, ctx) => {
      const r = await upgrade(g, { from: p.from, commands: p.commands, trial: p.trial }, (pc, msg) => {
        ctx.progress(pc, msg);
        ctx.log('info', msg);
      }, ctx.signal);
      ctx.log('info', `switched from ${r.from} to ${r.id}${p.trial ? ' (trial: health check pending)' : ''}`);
      trial.arm();
      changed();
      return r;
    },
    'generations.gc': async (p, ctx) => {
      const r = await gc(g, { keep: p.keep }, (pc, msg) => ctx.progress(pc, msg));
      ctx.log('info', `deleted ${r.deleted.length} generation(s)${r.deleted.length ? `: ${r.deleted.join(', ')}` : ''}`);
      changed();
      return { ...r, inventory: await g.inventoryNow() };
    },
    'generations.bootEntries': async (p) => {
      const cfg = g.requireConfig();
      const l = await g.layout(cfg);
      const input = { ...p, slots: cfg.fallbacks + 1 };
      const trial = g.store.readState().trial;
      return {
        refind: renderRefind(input),
        grub: renderGrub(input),
        systemdBoot: renderSystemdBoot(input, l.slots.filter((s): s is string => !!s), trial ? { id: trial.id, bootsLeft: trial.bootsLeft } : undefined),
      };
    },
    'generations.rollback': async (p, ctx) => {
      ctx.progress(0, p.to ? `switching to ${p.to}` : 'switching to the previous generation');
      const inv = await rollback(g, { to: p.to, reason: p.reason ?? 'requested by the controller' }, (pc, msg) => ctx.progress(pc, msg));
      ctx.log('info', `current is ${inv.current}`);
      trial.arm();
      changed();
      return inv;
    },
  };
}
