/**
 * Transparent huge pages for ONNX Runtime's weights, through glibc's malloc.
 *
 * Creating a session is mostly ONNX Runtime writing weights into fresh memory: upcast copies,
 * prepacked matrices, the arena. With 4 KiB pages every one of those pages is a page fault when
 * first written. Two glibc tunables (glibc 2.35 and later) make it one fault per 2 MiB:
 *   glibc.malloc.hugetlb=1    malloc asks the kernel for transparent huge pages (madvise) on the
 *                             heap and on its large mappings;
 *   glibc.malloc.arena_max=1  every thread allocates from that one heap. Otherwise the engine
 *                             thread gets an arena of its own, whose memory the first setting
 *                             leaves on small pages.
 * About half the session's creation time, generation speed unchanged (docs/benchmarks.md, "Huge-page
 * malloc"). Threads then share one malloc lock, which their own caches (tcache) mostly spare.
 *
 * glibc reads its tunables once, when the process starts, so the setting belongs to whoever starts
 * the sidecar: the worker image sets it (sidecar/Dockerfile), the benchmarks start their children
 * with it, and a CLI user can export it. It does nothing without glibc (macOS, musl) or when the
 * kernel's transparent huge pages are off ("never").
 */
export const HUGEPAGE_MALLOC_TUNABLES = 'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1';

const SETTINGS = HUGEPAGE_MALLOC_TUNABLES.split(':');
const nameOf = (setting: string) => setting.slice(0, setting.indexOf('='));
const NAMES = new Set(SETTINGS.map(nameOf));
const settingsOf = (env: NodeJS.ProcessEnv) => (env.GLIBC_TUNABLES ?? '').split(':').filter(Boolean);
const others = (env: NodeJS.ProcessEnv) => settingsOf(env).filter((s) => !NAMES.has(nameOf(s)));

/** Whether an environment's GLIBC_TUNABLES holds both settings (a colon-separated list; the last setting of a name wins). */
export function hasHugepageMalloc(env: NodeJS.ProcessEnv = process.env): boolean {
  const settings = settingsOf(env);
  return SETTINGS.every((wanted) => settings.filter((s) => nameOf(s) === nameOf(wanted)).at(-1) === wanted);
}

/** The environment with both settings, in place of any other values of theirs, beside the other tunables it has. */
export function withHugepageMalloc(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (hasHugepageMalloc(env)) return env;
  return { ...env, GLIBC_TUNABLES: [...others(env), ...SETTINGS].join(':') };
}

/** The environment without either setting: for measuring what they save. */
export function withoutHugepageMalloc(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { GLIBC_TUNABLES: _, ...rest } = env;
  const kept = others(env);
  return kept.length ? { ...rest, GLIBC_TUNABLES: kept.join(':') } : rest;
}
