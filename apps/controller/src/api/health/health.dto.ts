import { z } from 'zod';

export const livenessView = z
  .object({ status: z.literal('ok'), version: z.string(), replicaId: z.string() })
  .meta({ id: 'Liveness' });
export type LivenessView = z.output<typeof livenessView>;

const check = z.object({
  ok: z.boolean(),
  latencyMs: z.number().optional(),
  error: z.string().optional().describe('What is wrong and where, when not ok.'),
});

export const readinessView = z
  .object({
    ready: z.boolean(),
    message: z.string().describe('"ready", or which dependency is down and why.'),
    checks: z.object({ postgres: check, redis: check }),
  })
  .meta({ id: 'Readiness' });
export type ReadinessView = z.output<typeof readinessView>;
export type CheckView = z.output<typeof check>;
