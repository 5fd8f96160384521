import fs from 'node:fs';
import { SQSClient } from '@aws-sdk/client-sqs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

/**
 * Issue 19, item 6: `npm ci` warned EBADENGINE because a locked package (eventsource-parser 4)
 * needs Node 22.12 while package.json promises Node 20.19. Every locked package, dev ones
 * included, must accept the oldest Node that `engines` allows.
 */
describe('engines', () => {
  it('every package in package-lock.json runs on the oldest Node the package allows', () => {
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
    const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    expect(oldest).toBe('20.19.0');
    const refusing = Object.entries(lock.packages as Record<string, { version?: string; engines?: { node?: string }; optional?: boolean }>)
      .filter(([, p]) => typeof p.engines?.node === 'string' && !semver.satisfies(oldest, p.engines.node))
      .map(([name, p]) => `${name}@${p.version} needs node ${p.engines!.node}`);
    expect(refusing).toEqual([]);
  });

  it("the AWS SDK's Node-version notice stays out of the test log (it came once per test file on Node 20)", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      new SQSClient({ region: 'us-east-1' }).destroy(); // the SDK checks the Node version as a client is made
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.filter((m) => m.includes('NodeVersionSupportWarning'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
