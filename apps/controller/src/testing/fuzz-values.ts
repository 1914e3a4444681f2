import fc from 'fast-check';

/**
 * Seed and time budget of the fuzz suites (REST and gRPC). Seeded so a failure can be replayed
 * (`IBEX_FUZZ_SEED=<seed printed by the failure>`); bounded so the suite stays fast, and
 * `IBEX_FUZZ_MS_PER_OP=60000` for a long run.
 */
export function fuzzSettings(defaultMsPerOp = 1500): { seed: number; msPerOp: number } {
  const seed = Number(process.env['IBEX_FUZZ_SEED'] ?? 20260515);
  const msPerOp = Number(process.env['IBEX_FUZZ_MS_PER_OP'] ?? defaultMsPerOp);
  return { seed: Number.isFinite(seed) ? seed : 20260515, msPerOp: Number.isFinite(msPerOp) && msPerOp > 0 ? msPerOp : defaultMsPerOp };
}

/** Strings that have broken parsers, paths and databases before. */
export const NASTY_STRINGS = [
  ' ',
  '..',
  '../..',
  '../../etc/passwd',
  '..\\..\\windows',
  '/etc/shadow',
  'a/../../b',
  '\u0000',
  'a\u0000b',
  '\u202egnp.exe',
  '\ud83d\udca9',
  '\ud800',
  'ｆｕｌｌｗｉｄｔｈ',
  'e\u0301',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  'prototype',
  'NaN',
  '-1',
  '0',
  '1e400',
  '9007199254740993',
  "'; DROP TABLE device; --",
  '${jndi:ldap://x}',
  '%s%n%x',
  '<script>alert(1)</script>',
  '\r\nX-Injected: 1',
  'x'.repeat(5000),
];

/** An arbitrary string: a nasty one, random unicode, random code units, or a long one. */
export const fuzzString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NASTY_STRINGS),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ minLength: 300, maxLength: 3000 }),
);

/** Any JSON value, nested a little. */
export const fuzzJson: fc.Arbitrary<unknown> = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fuzzString, fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }), fc.dictionary(fuzzString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }));

/** A JSON text nested `depth` levels deep (arrays or objects). */
export function deepJson(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/**
 * `fc.assert` of `check` over `arb` for the time budget. fast-check's time limit abandons the
 * run in progress: this waits for it (its request must land before the next snapshot of the
 * database) and fails on its failure, which fast-check no longer sees.
 */
export async function assertForBudget<T>(arb: fc.Arbitrary<T>, check: (v: T) => Promise<void>, settings: { seed: number; msPerOp: number }): Promise<void> {
  let inflight: Promise<unknown> = Promise.resolve();
  let abandoned: unknown;
  await fc.assert(
    fc.asyncProperty(arb, (v) => {
      const run = check(v);
      inflight = run.catch((err: unknown) => (abandoned ??= err));
      return run;
    }),
    { seed: settings.seed, numRuns: 1_000_000, interruptAfterTimeLimit: settings.msPerOp, markInterruptAsFailure: false },
  );
  await inflight;
  if (abandoned) throw abandoned;
}
