import { z } from 'zod';
import { desiredStateSchema, jobTypes } from '@ibex/spec';
import { jobDetailView } from '../jobs/jobs.dto.js';

const whole = (min: number, max: number) => z.number().int('must be a whole number').min(min, `must be ${min}-${max}`).max(max, `must be ${min}-${max}`);
const params = jobTypes['state.plan'].params.shape;

export const planDeviceBody = z
  .object({
    spec: desiredStateSchema
      .optional()
      .describe("A proposed desired state, validated like PUT desired-state (400 names each bad field). Left out: the device's current desired revision."),
    sections: params.sections.describe('Only these sections (default: every section of the spec).'),
    timeoutSeconds: whole(1, 3600).optional().describe(`Per attempt, from delivery; default ${jobTypes['state.plan'].defaultTimeoutMs / 1000}.`),
    expiresInSeconds: whole(1, 30 * 86_400).optional().describe('Not delivered by then (device offline): the job expires. Default IBEX_JOB_DEFAULT_EXPIRY_MS.'),
  })
  .strict()
  .meta({
    id: 'PlanDevice',
    // The document shows the first example; {} (plan the current desired revision) is the other common body.
    examples: [{ spec: { files: { entries: [{ path: '/etc/motd', content: 'managed by ibex\n' }] } }, sections: ['files'], timeoutSeconds: 60 }, {}],
  });
export type PlanDeviceBody = z.output<typeof planDeviceBody>;

export const MAX_WAIT_SECONDS = 120;

export const planDeviceQuery = z
  .object({
    wait: z.coerce
      .number({ message: 'must be a number of seconds' })
      .int('must be a whole number')
      .min(0, `must be 0-${MAX_WAIT_SECONDS}`)
      .max(MAX_WAIT_SECONDS, `must be 0-${MAX_WAIT_SECONDS}`)
      .default(0)
      .describe(`Wait up to this many seconds (0-${MAX_WAIT_SECONDS}) for the result before answering; the job is returned as it is then, finished or not.`),
  })
  .strict();
export type PlanDeviceQuery = z.output<typeof planDeviceQuery>;

/** The result of a succeeded plan job (`Job.result` of a state.plan job), documented for readers of the API. */
export const planResultView = jobTypes['state.plan'].output.meta({
  id: 'PlanResult',
  examples: [
    {
      revision: 3,
      proposed: true,
      sections: [
        {
          section: 'files',
          state: 'pending',
          steps: [
            {
              action: 'write',
              path: '/etc/motd',
              text: 'write /etc/motd (16 bytes, mode 0644; replaces the file)',
              diff: '--- a/etc/motd\n+++ b/etc/motd\n@@ -1 +1 @@\n-hello\n+managed by ibex\n',
            },
          ],
        },
      ],
    },
  ],
});

/** A state.plan job as POST .../plan returns it: `result` is a PlanResult once it succeeded. */
export const planJobView = jobDetailView
  .extend({ result: planResultView.nullable().describe('The plan, once the job succeeded; null before.') })
  .meta({ id: 'PlanJob' });
