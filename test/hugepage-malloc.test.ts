import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasHugepageMalloc, HUGEPAGE_MALLOC_TUNABLE, withHugepageMalloc, withoutHugepageMalloc } from '../sidecar/onnx/hugepage-malloc.ts';

describe('GLIBC_TUNABLES for huge pages', () => {
  it('adds the tunable beside the ones already set, replaces another hugetlb value, and takes it out again', () => {
    expect(withHugepageMalloc({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: HUGEPAGE_MALLOC_TUNABLE });
    expect(withHugepageMalloc({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe(`glibc.malloc.arena_max=2:${HUGEPAGE_MALLOC_TUNABLE}`);
    expect(withHugepageMalloc({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe(`glibc.malloc.arena_max=2:${HUGEPAGE_MALLOC_TUNABLE}`);
    expect(hasHugepageMalloc({ GLIBC_TUNABLES: `${HUGEPAGE_MALLOC_TUNABLE}:glibc.malloc.hugetlb=0` })).toBe(false);
    expect(hasHugepageMalloc(withHugepageMalloc({}))).toBe(true);
    expect(withoutHugepageMalloc({ PATH: '/bin', GLIBC_TUNABLES: HUGEPAGE_MALLOC_TUNABLE })).toEqual({ PATH: '/bin' });
    expect(withoutHugepageMalloc({ GLIBC_TUNABLES: `glibc.malloc.arena_max=2:${HUGEPAGE_MALLOC_TUNABLE}` }).GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2');
  });

  // Linux with glibc, as in the worker image; what the kernel then does depends on its THP mode.
  it("puts ONNX Runtime's prepacked weights on transparent huge pages when the process starts with it", () => {
    const mode = /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))![1];
    const probe = (env: NodeJS.ProcessEnv) => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/hugepage-child.ts'], { env, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      return (JSON.parse(run.stdout.trim().split('\n').pop()!) as { anon_huge_kb: number }).anon_huge_kb;
    };
    const withIt = probe(withHugepageMalloc(process.env));
    const without = probe(withoutHugepageMalloc(process.env));
    if (mode === 'never') {
      expect([withIt, without]).toEqual([0, 0]);
    } else {
      // the 32 MiB packed weight, give or take the edges of its mapping
      expect(withIt).toBeGreaterThanOrEqual(24 * 1024);
      if (mode === 'madvise') expect(without).toBe(0);
    }
  });
});
