// Node test-runner reporter that writes {passed, failed, skipped, failures} as JSON, counting
// tests only (not the suites or files that hold them).
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    if (d.details?.type === 'suite') {
      // A suite fails on its own only when a hook (before/after) failed.
      if (event.type === 'test:fail' && d.details?.error?.failureType === 'hookFailed') {
        counts.failed++;
        counts.failures.push({ name: `${d.name} (hook)`, file: d.file });
      }
      continue;
    }
    if (d.skip || d.todo) counts.skipped++;
    else if (event.type === 'test:pass') counts.passed++;
    else {
      // A file that failed to load shows up as one failing "test" named after the file.
      counts.failed++;
      counts.failures.push({ name: d.name, file: d.file });
    }
  }
  yield JSON.stringify(counts);
}
