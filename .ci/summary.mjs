// The end of a CI run (.ci/run): from vitest's JSON report, the slowest test files and how long the
// run took (it must stay under 10 minutes on the 2-core machine), then the plain "N passed, N failed"
// that CI reads as the last line (not vitest's own summary). A report that cannot be read is 1 failed.
//
//   node .ci/summary.mjs <vitest JSON report> [how many files, default 10]
import fs from 'node:fs';
import path from 'node:path';

const [reportFile, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 10);
let passed = 0;
let failed = 0;
try {
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
  passed = report.numPassedTests;
  // a file that fails to load has no failed test, yet the run did not succeed
  failed = report.numFailedTests + (report.numTotalTestSuites && report.success === false && report.numFailedTests === 0 ? 1 : 0);
  const files = report.testResults
    .map((f) => ({ name: path.relative(process.cwd(), f.name), seconds: (f.endTime - f.startTime) / 1000, failed: f.status === 'failed' }))
    .sort((a, b) => b.seconds - a.seconds);
  if (files.length > 0) {
    const wall = Math.round((Math.max(...report.testResults.map((f) => f.endTime)) - report.startTime) / 1000);
    console.log(`slowest test files (${Math.min(count, files.length)} of ${files.length}; the run took ${Math.floor(wall / 60)} min ${wall % 60} s):`);
    for (const f of files.slice(0, count)) console.log(`${f.seconds.toFixed(1).padStart(8)} s  ${f.name}${f.failed ? '  (failed)' : ''}`);
  }
} catch (e) {
  console.log(`${reportFile}: ${e.message}`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
