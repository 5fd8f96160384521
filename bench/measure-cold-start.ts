/**
 * Cold start of the model on one checkpoint: process start → engine ready (what the sidecar waits
 * for before taking jobs) from the Hugging Face directory and from bundles of it, next to the time
 * to read the weight files once, each in a fresh process (cold-start-child.ts), optionally from an
 * emptied page cache, per byte against a smaller reference checkpoint, from the build, without huge
 * pages, and with the disk's reads capped (docs/benchmarks.md, "Cold start: how it is measured").
 * Prints one JSON line.
 *
 *   npx tsx bench/measure-cold-start.ts <HF checkpoint dir> [<smaller HF checkpoint dir>] [--no-drop-caches]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDist } from '../scripts/build-dist.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import type { WeightDtype } from '../sidecar/graphs/precision.ts';
import { withHugepageMalloc, withoutHugepageMalloc } from '../sidecar/onnx/hugepage-malloc.ts';
import { BENCH_CACHE_DIR } from './bench-checkpoints.ts';
import { canDropCaches, child, coldProgram, workerReady, type ChildOptions } from './cold-start-processes.ts';
import { FIXED_STAGES, type ColdStartStage } from './cold-start-stages.ts';
import { readCap, type ReadCap } from './read-cap.ts';

/** One checkpoint's model, the middle of its repeats. */
export interface ColdStartRun {
  weights_mb: number;
  /** Reading the weight files once, in a fresh process. */
  read_ms: number;
  /** Process start → engine ready, in process (includes node + tsx start-up). */
  ready_ms: number;
  ready_over_read: number;
  /** The same without the fixed stages: the ratio for a process that is already up with its modules loaded. */
  load_over_read: number;
  /** Where ready_ms went, from the run whose ready time was the median (so the stages add up to it). */
  stages_ms: Record<ColdStartStage, number>;
  /** ready_ms of a process started without the huge-page tunable (median; main models only). */
  ready_without_hugepages_ms?: number;
}

/** The same start from the build: plain JavaScript, no tsx in either thread (medians). */
export interface BundledStart {
  ready_ms: number;
  /** Where ready_ms went; process_start also holds parsing the bundle and loading the native packages it imports. */
  stages_ms: Record<ColdStartStage, number>;
  engine_thread_ready_ms: number;
}

/** Reading the weights once and the worker's start, with the disk's reads capped (medians). */
export interface CappedStart {
  /** The cap these figures were measured under. */
  read_cap_mib_s: number;
  read_ms: number;
  worker_ready_ms: number;
  worker_over_read: number;
  /**
   * What that worker had read from the disk when it said ready (node, its code, the model): the weights
   * are mapped, and pages it has not touched yet (embedding rows not yet used; the VQ-VAE, whose
   * sessions are made on first use) are read when first needed.
   */
  worker_read_mb: number;
}

export interface ColdStartFigure extends ColdStartRun {
  /** The sidecar's own path (EngineThread.start: a worker thread that starts tsx and imports again). */
  engine_thread_ready_ms: number;
  engine_thread_over_read: number;
  /** The worker process from the build, start → its ready line (median; with `bundled`). */
  worker_ready_ms?: number;
  worker_over_read?: number;
  bundled?: BundledStart;
  /** (ready − reference ready) / (read − reference read); absent without a reference or when the reads came out equal. */
  per_byte_ratio?: number;
  /** The same model made from the smaller checkpoint. */
  reference?: ColdStartRun;
  /** By cap: "125_mib_s", … */
  capped?: Record<string, CappedStart>;
}

export interface ColdStartFigures {
  /** Whether the page cache was emptied before every figure. */
  dropped_caches: boolean;
  /** Whether the children started with malloc on huge pages (GLIBC_TUNABLES), as the worker image does. */
  hugepage_malloc: boolean;
  /** By model: hf_dir, bundle_bf16, bundle_fp32, bundle_int4, … */
  models: Record<string, ColdStartFigure>;
  /** Why the capped figures are missing, when they were asked for and cannot be measured here. */
  read_cap_unavailable?: string;
}

export interface ColdStartOptions {
  referenceDir?: string;
  dropCaches?: boolean;
  repeats?: number;
  dtypes?: WeightDtype[];
  /** Also start the last model from the build (default true). */
  bundled?: boolean;
  /** Start the children with malloc on huge pages, as the worker image does (default true). */
  hugepages?: boolean;
  /** Read caps to measure the main models' read and worker start under (needs `bundled`); [] for none. */
  readCapsMiBps?: number[];
}

export const MODEL_LABELS: Record<string, string> = { hf_dir: 'HF directory' };
export const modelLabel = (key: string) => MODEL_LABELS[key] ?? key.replace('_', ' ');

export function perByteRatio(run: ColdStartRun, reference: ColdStartRun): number | undefined {
  const read = run.read_ms - reference.read_ms;
  return read > 0 ? (run.ready_ms - reference.ready_ms) / read : undefined;
}

/** What one `load` child prints (cold-start-child.ts). */
export interface LoadSample {
  ready_ms: number;
  stages_ms: Record<ColdStartStage, number>;
}

/** Everything measured of one model over the repeats, before it is summarised (summarizeModel). */
export interface Samples {
  bytes: number;
  reads: number[];
  loads: LoadSample[];
  threads: number[];
  loadsWithoutHugepages: number[];
  bundledLoads: LoadSample[];
  bundledThreads: number[];
  workers: number[];
  /** By cap (MiB/s). */
  capped: Map<number, { reads: number[]; workers: { ready_ms: number; read_bytes?: number }[] }>;
}

const middle = <T>(xs: T[], by: (x: T) => number): T => [...xs].sort((a, b) => by(a) - by(b))[Math.floor(xs.length / 2)];

/** The figures of one model from its samples: medians, and the stages of the median load. */
export function summarizeRun(bytes: number, reads: number[], loads: LoadSample[]): ColdStartRun {
  const read = middle(reads, (x) => x);
  const load = middle(loads, (l) => l.ready_ms);
  const fixed = FIXED_STAGES.reduce((sum, stage) => sum + load.stages_ms[stage], 0);
  return {
    weights_mb: bytes / 2 ** 20,
    read_ms: read,
    ready_ms: load.ready_ms,
    ready_over_read: load.ready_ms / read,
    load_over_read: (load.ready_ms - fixed) / read,
    stages_ms: load.stages_ms,
  };
}

/**
 * One model's figures from its samples (and its reference's, when measured): the medians, the stages
 * of the median load, the ratios to the median read.
 */
export function summarizeModel(s: Samples, r?: Samples): ColdStartFigure {
  const run = summarizeRun(s.bytes, s.reads, s.loads);
  const thread = middle(s.threads, (x) => x);
  const figure: ColdStartFigure = { ...run, engine_thread_ready_ms: thread, engine_thread_over_read: thread / run.read_ms };
  if (s.loadsWithoutHugepages.length > 0) figure.ready_without_hugepages_ms = middle(s.loadsWithoutHugepages, (x) => x);
  if (s.workers.length > 0) {
    figure.worker_ready_ms = middle(s.workers, (x) => x);
    figure.worker_over_read = figure.worker_ready_ms / run.read_ms;
  }
  if (s.bundledLoads.length > 0) {
    const load = middle(s.bundledLoads, (l) => l.ready_ms);
    figure.bundled = { ready_ms: load.ready_ms, stages_ms: load.stages_ms, engine_thread_ready_ms: middle(s.bundledThreads, (x) => x) };
  }
  if (s.capped.size > 0) {
    figure.capped = Object.fromEntries(
      [...s.capped].map(([rate, c]) => {
        const read = middle(c.reads, (x) => x);
        const worker = middle(c.workers, (w) => w.ready_ms);
        const figure: CappedStart = {
          read_cap_mib_s: rate,
          read_ms: read,
          worker_ready_ms: worker.ready_ms,
          worker_over_read: worker.ready_ms / read,
          worker_read_mb: worker.read_bytes! / 2 ** 20,
        };
        return [`${rate}_mib_s`, figure];
      }),
    );
  }
  if (r) {
    figure.reference = summarizeRun(r.bytes, r.reads, r.loads);
    const perByte = perByteRatio(run, figure.reference);
    if (perByte !== undefined) figure.per_byte_ratio = perByte;
  }
  return figure;
}

/**
 * The HF directory and a bundle per dtype, all written into `into` by this run: a virtual disk's
 * host may still cache files written a moment ago after the guest empties its page cache, so every
 * model is copied alike rather than the directory alone being read from wherever it has lain since
 * (docs/benchmarks.md, "Cold start: how it is measured").
 */
async function modelsOf(hfDir: string, dtypes: WeightDtype[], into: string): Promise<[string, string][]> {
  const copy = path.join(into, 'hf');
  fs.cpSync(hfDir, copy, { recursive: true });
  const models: [string, string][] = [['hf_dir', copy]];
  for (const dtype of dtypes) {
    const dir = path.join(into, dtype);
    await writeBundle({ from: hfDir, out: dir, precision: { dtype, target: 'cpu' } });
    models.push([`bundle_${dtype}`, dir]);
  }
  return models;
}

/** Cold start cannot be measured here now: running processes map native libraries the children load. */
export class ColdStartRefused extends Error {
  constructor(readonly mapped: string[]) {
    super(
      `running processes map libraries the children load, which keeps them cached (the children would not read them from the disk): ` +
        `${mapped.join('; ')}. Measure cold start where nothing has loaded them (anole bench does so first).`,
    );
    this.name = 'ColdStartRefused';
  }
}

/** The read caps at `rates` on the disk holding `dir`, or why there are none (then none are held). */
function readCaps(dir: string, rates: number[], here: { dropCaches: boolean; built: boolean }): { caps: ReadCap[]; unavailable?: string } {
  if (rates.length === 0) return { caps: [] };
  if (!here.dropCaches) return { caps: [], unavailable: 'the page cache is left warm (not root), so reads would not reach the disk' };
  if (!here.built) return { caps: [], unavailable: 'capped figures are of the worker from the build (bundled: false)' };
  const caps: ReadCap[] = [];
  for (const rate of rates) {
    const cap = readCap(dir, rate);
    if ('unavailable' in cap) {
      for (const held of caps) held.release();
      return { caps: [], unavailable: cap.unavailable };
    }
    caps.push(cap);
  }
  return { caps };
}

export async function measureColdStart(hfDir: string, opts: ColdStartOptions = {}): Promise<ColdStartFigures> {
  const dropCaches = opts.dropCaches ?? canDropCaches();
  const hugepages = opts.hugepages ?? true;
  const env = hugepages ? withHugepageMalloc(process.env) : withoutHugepageMalloc(process.env);
  const dtypes = opts.dtypes ?? ['bf16', 'fp32', 'int4'];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cold-'));
  // inside the repository: a bundle resolves its external packages from node_modules above it
  fs.mkdirSync(BENCH_CACHE_DIR, { recursive: true });
  const dist = opts.bundled === false ? undefined : fs.mkdtempSync(path.join(BENCH_CACHE_DIR, 'dist-'));
  let caps: ReadCap[] = [];
  let capUnavailable: string | undefined;
  try {
    if (dist) await buildDist({ outDir: dist, extraEntries: { 'cold-start-child': 'bench/cold-start-child.ts' } });
    const bundle = dist && path.join(dist, 'cold-start-child.mjs');
    const cli = dist && path.join(dist, 'anole.mjs');
    const main = await modelsOf(hfDir, dtypes, path.join(tmp, 'main'));
    const reference = opts.referenceDir ? await modelsOf(opts.referenceDir, dtypes, path.join(tmp, 'reference')) : [];
    const program = dropCaches ? coldProgram(tmp) : undefined;
    if (program && program.mapped.length > 0) throw new ColdStartRefused(program.mapped);
    const base: ChildOptions = { dropCaches, env, node: program?.node ?? process.execPath };
    ({ caps, unavailable: capUnavailable } = readCaps(tmp, opts.readCapsMiBps ?? (dropCaches && cli ? [125, 500] : []), { dropCaches, built: cli !== undefined }));
    const samples = new Map<string, Samples>();
    // the build saves a fixed cost, the same for any model: one measures it, the last (int4 by
    // default, the quickest to load, where it weighs most)
    const bundledKey = bundle && main.at(-1)![0];
    const sample = async (id: string, dir: string, isMain: boolean) => {
      const s = samples.get(id) ?? {
        bytes: 0,
        reads: [],
        loads: [],
        threads: [],
        loadsWithoutHugepages: [],
        bundledLoads: [],
        bundledThreads: [],
        workers: [],
        capped: new Map(caps.map((cap) => [cap.mibPerSecond, { reads: [], workers: [] }])),
      };
      samples.set(id, s);
      const read = child<{ read_ms: number; bytes: number }>('read', dir, base);
      s.reads.push(read.read_ms);
      s.bytes = read.bytes;
      s.loads.push(child<LoadSample>('load', dir, base));
      if (isMain) {
        s.threads.push(child<{ ready_ms: number }>('thread', dir, base).ready_ms);
        if (hugepages) s.loadsWithoutHugepages.push(child<LoadSample>('load', dir, { ...base, env: withoutHugepageMalloc(process.env) }).ready_ms);
      }
      if (id === bundledKey) {
        s.bundledLoads.push(child<LoadSample>('load', dir, { ...base, bundle }));
        s.bundledThreads.push(child<{ ready_ms: number }>('thread', dir, { ...base, bundle }).ready_ms);
      }
      if (isMain && cli) {
        s.workers.push((await workerReady(cli, dir, base)).ready_ms);
        for (const cap of caps) {
          const capped = s.capped.get(cap.mibPerSecond)!;
          capped.reads.push(child<{ read_ms: number }>('read', dir, { ...base, cap }).read_ms);
          capped.workers.push(await workerReady(cli, dir, { ...base, cap }));
        }
      }
    };
    // Interleaved, every model once per round, so that whatever else runs on the machine meets
    // each of them alike; the engine thread's cost over the in-process load is the same for any
    // checkpoint, so only the main one measures it.
    for (let round = 0; round < (opts.repeats ?? 3); round++) {
      for (const [key, dir] of main) await sample(key, dir, true);
      for (const [key, dir] of reference) await sample(`reference ${key}`, dir, false);
    }
    const models: Record<string, ColdStartFigure> = {};
    for (const [key] of main) models[key] = summarizeModel(samples.get(key)!, samples.get(`reference ${key}`));
    return { dropped_caches: dropCaches, hugepage_malloc: hugepages, models, ...(capUnavailable ? { read_cap_unavailable: capUnavailable } : {}) };
  } finally {
    for (const cap of caps) cap.release();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (dist) fs.rmSync(dist, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, referenceDir] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (!dir) throw new Error('usage: measure-cold-start.ts <HF checkpoint dir> [<smaller HF checkpoint dir>] [--no-drop-caches]');
  const dropCaches = process.argv.includes('--no-drop-caches') ? false : undefined;
  process.stdout.write(JSON.stringify(await measureColdStart(dir, { referenceDir, dropCaches })) + '\n');
}
