// Prints the plain closing line `N passed, N failed[, N skipped]` from one or more vitest JSON
// reports (added up). A missing or unreadable report (vitest crashed before writing it) counts
// as one failure.
import { readFileSync } from 'node:fs';

const files = process.argv.length > 2 ? process.argv.slice(2) : ['.test-results.json'];
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of files) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    console.error(`[test] no vitest report at ${file}: ${err.message}`);
    failed += 1;
    continue;
  }
  passed += report.numPassedTests ?? 0;
  // Files that failed without a failed test (load errors, failing hooks) count as failures too.
  failed += (report.numFailedTests ?? 0) + countFilesFailedWithoutFailedTests(report);
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
console.log(`${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 || passed === 0 ? 1 : 0);

function countFilesFailedWithoutFailedTests(r) {
  return (r.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
}
