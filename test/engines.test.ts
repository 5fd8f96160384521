import fs from 'node:fs';
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
});
