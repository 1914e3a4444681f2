/**
 * How a rollout's devices are split into a canary and waves. Pure: the same devices and
 * strategy always give the same waves (devices are taken in the order given, which the caller
 * makes stable: by name).
 */

/** A group size: a count of devices, or a percentage of all targeted devices (rounded up). */
export type GroupSize = { count: number } | { percent: number };

export type WavesSpec =
  /** Everything in one wave (after the canary, if any). */
  | { kind: 'none' }
  /** These sizes in order; devices left over form one more wave. */
  | { kind: 'fixed'; sizes: GroupSize[] }
  /** `count` waves of (nearly) equal size. */
  | { kind: 'equal'; count: number }
  /** first, first*factor, first*factor^2 ... until every device has a wave. */
  | { kind: 'exponential'; first: number; factor: number };

export type ApprovalPolicy = 'none' | 'after_canary' | 'every_wave';

export interface RolloutStrategy {
  canary?: GroupSize | undefined;
  waves: WavesSpec;
  /** Devices with a job under way at once, over all waves; null: no limit. */
  maxInProgress: number | null;
  /** Share of a wave's devices (not counting skipped ones) that must succeed before the next wave starts. */
  successThresholdPercent: number;
  /** Abort once this share of the finished devices failed, counted only from `minFinished` finished devices on. */
  errorThreshold?: { percent: number; minFinished: number } | undefined;
  approval: ApprovalPolicy;
}

export interface PlannedWave {
  index: number;
  name: string;
  requiresApproval: boolean;
  deviceIds: string[];
}

function sizeOf(g: GroupSize, total: number): number {
  return 'count' in g ? g.count : Math.ceil((g.percent * total) / 100);
}

/** Sizes of the waves after the canary, for `rest` devices out of `total`. */
function waveSizes(spec: WavesSpec, rest: number, total: number): number[] {
  const sizes: number[] = [];
  let left = rest;
  const take = (n: number) => {
    const k = Math.min(Math.max(1, n), left);
    if (k > 0) sizes.push(k);
    left -= k;
  };
  switch (spec.kind) {
    case 'none':
      take(left);
      break;
    case 'fixed':
      for (const g of spec.sizes) if (left > 0) take(sizeOf(g, total));
      if (left > 0) take(left);
      break;
    case 'equal': {
      const n = Math.max(1, Math.min(spec.count, rest));
      for (let i = 0; i < n; i++) take(Math.ceil(left / (n - i)));
      break;
    }
    case 'exponential': {
      let n = spec.first;
      while (left > 0) {
        take(Math.round(n));
        n *= spec.factor;
      }
      break;
    }
  }
  return sizes;
}

/** The canary (wave 0 when there is one) and the waves, each with its devices. */
export function planWaves(deviceIds: readonly string[], s: RolloutStrategy): PlannedWave[] {
  const total = deviceIds.length;
  const waves: PlannedWave[] = [];
  let at = 0;
  const push = (name: string, n: number) => {
    const index = waves.length;
    const requiresApproval = index > 0 && (s.approval === 'every_wave' || (s.approval === 'after_canary' && index === 1 && waves[0]!.name === 'canary'));
    waves.push({ index, name, requiresApproval, deviceIds: deviceIds.slice(at, at + n) });
    at += n;
  };
  if (s.canary && total > 0) push('canary', Math.min(total, Math.max(1, sizeOf(s.canary, total))));
  let k = 1;
  for (const n of waveSizes(s.waves, total - at, total)) push(`wave-${k++}`, n);
  // An empty rollout still has one wave, so progress has something to show.
  if (waves.length === 0) push('wave-1', 0);
  return waves;
}
