import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasHugepageMalloc, HUGEPAGE_MALLOC_TUNABLES, withHugepageMalloc, withoutHugepageMalloc } from '../sidecar/onnx/hugepage-malloc.ts';

/** The kernel's transparent-huge-page mode: always, madvise or never. */
const thpMode = () => /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))![1];

/** Runs test/hugepage-child.ts with `env` and returns its JSON line. */
function probe<T>(env: NodeJS.ProcessEnv, ...args: string[]): T {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/hugepage-child.ts', ...args], { env, encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as T;
}

describe('GLIBC_TUNABLES for huge pages', () => {
  it('adds both settings beside the tunables already set, replaces other values of theirs, and takes them out again', () => {
    expect(HUGEPAGE_MALLOC_TUNABLES).toBe('glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1');
    expect(withHugepageMalloc({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: HUGEPAGE_MALLOC_TUNABLES });
    expect(withHugepageMalloc({ GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' }).GLIBC_TUNABLES).toBe(`glibc.malloc.tcache_count=0:${HUGEPAGE_MALLOC_TUNABLES}`);
    expect(withHugepageMalloc({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0:glibc.malloc.arena_max=4' }).GLIBC_TUNABLES).toBe(HUGEPAGE_MALLOC_TUNABLES);
    expect(hasHugepageMalloc({ GLIBC_TUNABLES: `${HUGEPAGE_MALLOC_TUNABLES}:glibc.malloc.hugetlb=0` })).toBe(false);
    expect(hasHugepageMalloc({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' })).toBe(false);
    expect(hasHugepageMalloc(withHugepageMalloc({}))).toBe(true);
    expect(withoutHugepageMalloc({ PATH: '/bin', GLIBC_TUNABLES: HUGEPAGE_MALLOC_TUNABLES })).toEqual({ PATH: '/bin' });
    expect(withoutHugepageMalloc({ GLIBC_TUNABLES: `glibc.malloc.tcache_count=0:${HUGEPAGE_MALLOC_TUNABLES}` }).GLIBC_TUNABLES).toBe('glibc.malloc.tcache_count=0');
  });

  // Linux with glibc, as in the worker image; what the kernel then does depends on its THP mode.
  it("puts ONNX Runtime's prepacked weights on transparent huge pages when the process starts with them", () => {
    const withThem = probe<{ anon_huge_kb: number }>(withHugepageMalloc(process.env), 'gemm').anon_huge_kb;
    const without = probe<{ anon_huge_kb: number }>(withoutHugepageMalloc(process.env), 'gemm').anon_huge_kb;
    if (thpMode() === 'never') {
      expect([withThem, without]).toEqual([0, 0]);
    } else {
      // the 32 MiB packed weight, give or take the edges of its mapping
      expect(withThem).toBeGreaterThanOrEqual(24 * 1024);
      if (thpMode() === 'madvise') expect(without).toBe(0);
    }
  });

  it("reaches the engine thread's allocations too: arena_max=1 keeps them on the huge-page heap", () => {
    const faults = (env: NodeJS.ProcessEnv) => probe<{ faults: number }>(env, 'engine-thread', 'test/fixtures/anole-tiny').faults;
    const both = faults(withHugepageMalloc(process.env));
    const hugetlbOnly = faults({ ...withoutHugepageMalloc(process.env), GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    // measured here: about 18k page faults against 33k (and 38k with neither)
    if (thpMode() === 'never') expect(both).toBeGreaterThan(0);
    else expect(both).toBeLessThan(0.75 * hugetlbOnly);
  });
});
