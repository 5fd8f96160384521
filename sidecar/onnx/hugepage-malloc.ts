/**
 * Transparent huge pages for ONNX Runtime's weights, through glibc's malloc.
 *
 * Creating a session is mostly ONNX Runtime writing weights into fresh memory: upcast copies,
 * prepacked matrices, the arena. With 4 KiB pages every one of those pages is a page fault when
 * first written. Started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc 2.35 and later), malloc
 * asks the kernel for transparent huge pages on its large mappings (madvise), one fault per 2 MiB.
 * Measured here (small preset, generator session, warm page cache): fp32 bundle 3.2 → 1.55 s
 * (140k → 5k faults), int4 bundle 0.69 → 0.30 s, Hugging Face directory 4.7 → 2.3 s.
 *
 * glibc reads its tunables once, when the process starts, so the setting belongs to whoever starts
 * the sidecar: the worker image sets it (sidecar/Dockerfile), the benchmarks start their children
 * with it, and a CLI user can export it. It does nothing without glibc (macOS, musl) or when the
 * kernel's transparent huge pages are off ("never").
 */
export const HUGEPAGE_MALLOC_TUNABLE = 'glibc.malloc.hugetlb=1';

/** Whether an environment's GLIBC_TUNABLES asks for it (a colon-separated list; the last setting of a name wins). */
export function hasHugepageMalloc(env: NodeJS.ProcessEnv = process.env): boolean {
  const settings = (env.GLIBC_TUNABLES ?? '').split(':').filter((s) => s.startsWith('glibc.malloc.hugetlb='));
  return settings.at(-1) === HUGEPAGE_MALLOC_TUNABLE;
}

/** The environment with the tunable added to whatever GLIBC_TUNABLES it already has. */
export function withHugepageMalloc(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (hasHugepageMalloc(env)) return env;
  const kept = (env.GLIBC_TUNABLES ?? '').split(':').filter((s) => s && !s.startsWith('glibc.malloc.hugetlb='));
  return { ...env, GLIBC_TUNABLES: [...kept, HUGEPAGE_MALLOC_TUNABLE].join(':') };
}

/** The environment without it: for measuring what it saves. */
export function withoutHugepageMalloc(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const kept = (env.GLIBC_TUNABLES ?? '').split(':').filter((s) => s && !s.startsWith('glibc.malloc.hugetlb='));
  const { GLIBC_TUNABLES: _, ...rest } = env;
  return kept.length ? { ...rest, GLIBC_TUNABLES: kept.join(':') } : rest;
}
