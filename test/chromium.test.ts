import { describe, expect, it } from 'vitest';
import { DEBIAN_CHROMIUM, ensureChromium, thisMachine, type ChromiumHost } from './chromium.ts';

/** How `npm test` finds the playground test's browser on a machine that may not have it (issue 19, item 5). */
describe('the playground test finds its Chromium', () => {
  const host = (over: Partial<ChromiumHost> & { files?: string[] }): ChromiumHost & { installs: number } => {
    const files = new Set(over.files ?? []);
    const h = {
      exists: (f: string) => files.has(f),
      isRoot: over.isRoot ?? false,
      hasApt: over.hasApt ?? true,
      installs: 0,
      install: () => {
        h.installs++;
        if (over.install) over.install();
        else files.add(DEBIAN_CHROMIUM);
      },
    };
    return h;
  };

  it('uses Debian\'s when it is there, and installs nothing', () => {
    const h = host({ files: [DEBIAN_CHROMIUM], isRoot: true });
    expect(ensureChromium({}, h)).toBe(DEBIAN_CHROMIUM);
    expect(h.installs).toBe(0);
  });

  it('installs Debian\'s package when it is missing and the user can (root with apt), as .ci/run does', () => {
    const h = host({ isRoot: true });
    expect(ensureChromium({}, h)).toBe(DEBIAN_CHROMIUM);
    expect(h.installs).toBe(1);
  });

  it('otherwise fails at once with the one command to run (never skipped)', () => {
    const h = host({ isRoot: false });
    expect(() => ensureChromium({}, h)).toThrow("the playground test drives Debian's Chromium, which is missing: run `sudo apt-get install chromium`");
    expect(h.installs).toBe(0);
    expect(() => ensureChromium({}, host({ isRoot: true, hasApt: false }))).toThrow(/sudo apt-get install chromium/);
  });

  it('takes $CHROMIUM first, and names it when it does not exist', () => {
    expect(ensureChromium({ CHROMIUM: '/opt/chrome' }, host({ files: ['/opt/chrome'] }))).toBe('/opt/chrome');
    expect(() => ensureChromium({ CHROMIUM: '/opt/none' }, host({ files: [DEBIAN_CHROMIUM] }))).toThrow('CHROMIUM=/opt/none: no such file');
  });

  it('on this machine it resolves to a browser that exists', () => {
    expect(thisMachine.exists(ensureChromium())).toBe(true);
  });
});
