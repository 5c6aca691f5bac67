// Prints the plain closing line `N passed, N failed[, N skipped]` from vitest's JSON report.
// A missing or unreadable report (vitest crashed before writing it) counts as one failure.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.test-results.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`[test] no vitest report at ${file}: ${err.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// Suites that failed to load (syntax errors, failing hooks) count as failures too.
const failed = (report.numFailedTests ?? 0) + countFilesFailedWithoutFailedTests(report);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
const line = `${passed} passed, ${Math.max(failed, 0)} failed` + (skipped > 0 ? `, ${skipped} skipped` : '');
console.log(line);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

function countFilesFailedWithoutFailedTests(r) {
  return (r.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
}
