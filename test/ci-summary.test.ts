import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/** .ci/summary.mjs, the end of .ci/run, on made-up vitest JSON reports (the whole suite is not run for this). */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-ci-summary-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function summary(report: unknown, ...args: string[]): string[] {
  const file = path.join(tmp, `report-${Math.random().toString(36).slice(2)}.json`);
  if (report !== undefined) fs.writeFileSync(file, typeof report === 'string' ? report : JSON.stringify(report));
  return execFileSync(process.execPath, ['.ci/summary.mjs', file, ...args], { encoding: 'utf8' }).trimEnd().split('\n');
}

const START = 1_800_000_000_000;
/** A file that ran from `from` to `to` seconds after the run started. */
const file = (name: string, from: number, to: number, status = 'passed') => ({ name: path.resolve(`test/${name}`), startTime: START + from * 1000, endTime: START + to * 1000, status, assertionResults: [] });

describe('.ci/summary.mjs', () => {
  it('lists the slowest files, slowest first, with how long the run took, and ends with "N passed, N failed"', () => {
    const files = Array.from({ length: 12 }, (_, i) => file(`f${i}.test.ts`, i, i + 1 + i * 10));
    files[3] = file('broken.test.ts', 3, 40.04, 'failed');
    const lines = summary({ numTotalTestSuites: 12, numPassedTests: 130, numFailedTests: 2, startTime: START, success: false, testResults: files });
    expect(lines[0]).toBe('slowest test files (10 of 12; the run took 2 min 2 s):');
    expect(lines.slice(1, 4)).toEqual(['   111.0 s  test/f11.test.ts', '   101.0 s  test/f10.test.ts', '    91.0 s  test/f9.test.ts']);
    expect(lines).toContain('    37.0 s  test/broken.test.ts  (failed)');
    expect(lines).toHaveLength(12);
    expect(lines.slice(1, 11).map((l) => l.split(' s  ')[1])).not.toContain('test/f0.test.ts'); // the quickest are left out
    expect(lines.at(-1)).toBe('130 passed, 2 failed');
    expect(summary({ numTotalTestSuites: 1, numPassedTests: 3, numFailedTests: 0, startTime: START, success: true, testResults: [file('a.test.ts', 0, 2)] }, '3')).toEqual([
      'slowest test files (1 of 1; the run took 0 min 2 s):',
      '     2.0 s  test/a.test.ts',
      '3 passed, 0 failed',
    ]);
  });

  it('counts a run that failed with no failing test (a file that did not load) as 1 failed', () => {
    const lines = summary({ numTotalTestSuites: 2, numPassedTests: 5, numFailedTests: 0, startTime: START, success: false, testResults: [file('a.test.ts', 0, 1), file('b.test.ts', 0, 0.1, 'failed')] });
    expect(lines.at(-1)).toBe('5 passed, 1 failed');
  });

  it('a report that is missing or not JSON: says why, and the last line is still "0 passed, 1 failed"', () => {
    const missing = summary(undefined);
    expect(missing[0]).toMatch(/report-.*\.json: ENOENT/);
    expect(missing.at(-1)).toBe('0 passed, 1 failed');
    expect(summary('{"numPassedTests": ').at(-1)).toBe('0 passed, 1 failed');
  });
});
