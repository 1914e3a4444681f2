/**
 * Wraps `target[method]` (an async method) to count its calls and how many ran at once, until
 * `restore()`: for tests that bound concurrency (admission of Hellos, batches of reports).
 */
export function watchConcurrency(target: object, method: string): { readonly calls: number; readonly most: number; restore(): void } {
  const t = target as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = t[method]!;
  let open = 0;
  const seen = { calls: 0, most: 0 };
  t[method] = async (...args: unknown[]) => {
    seen.calls++;
    seen.most = Math.max(seen.most, ++open);
    try {
      return await original.apply(target, args);
    } finally {
      open--;
    }
  };
  return {
    get calls() {
      return seen.calls;
    },
    get most() {
      return seen.most;
    },
    restore: () => {
      t[method] = original;
    },
  };
}
