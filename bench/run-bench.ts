import os from 'node:os';
import { RANDOM_CHECKPOINT_PRESETS, type PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchCheckpoint, sizeOnDisk } from './bench-checkpoints.ts';
import { describeColdStart } from './describe-cold-start.ts';
import { ColdStartRefused, measureColdStart, type ColdStartFigures } from './measure-cold-start.ts';
import { measureLoad, type LoadFigures } from './measure-load.ts';
import { benchReportLine, type FigureGroup, type PresetFigures } from './report.ts';

export interface BenchOptions {
  presets?: string[];
}

const MiB = 2 ** 20;

/**
 * `anole bench` (npm run bench): per preset, the model's costs (load memory, prefill, single
 * step, VQ encode/decode) and then the engine's rows (text tokens/s at contexts 50 and 1000, image
 * tokens/s with and without guidance, bytes per token at contexts 100 and 1000, time to first
 * token, a whole image), then precision (fp32 / int8 / int4 bundles against the checkpoint); cold
 * start (fresh processes: ready against reading the weights once) comes before any of that, while this
 * process has not loaded ONNX Runtime: a library a process maps stays in the page cache whatever is
 * dropped, and the children would not read it as a cold worker does. Readable lines go to
 * stderr as it runs, with each part's duration; the last stdout line is one JSON object
 * {"tiny": {...}, "small": {...}, "total_seconds", the 1-minute load averages at start and end,
 * "preprocess_4096_jpeg_s" and its decode / resize parts}.
 */
export async function runBench(opts: BenchOptions = {}): Promise<void> {
  const presets = opts.presets ?? ['tiny', 'small'];
  for (const p of presets) {
    if (!(p in RANDOM_CHECKPOINT_PRESETS)) throw new Error(`unknown preset ${p} (known: ${Object.keys(RANDOM_CHECKPOINT_PRESETS).join(', ')})`);
  }
  const start = performance.now();
  // Other work on this 2-core machine moves every timing: the load average says how much there was.
  const loadBefore = os.loadavg()[0];
  process.stderr.write(`bench: load average ${loadBefore.toFixed(2)} at the start (2 cores)\n`);
  // Every load child starts before this process loads any model: on Linux a child's maxRSS begins
  // at its parent's RSS when spawned (the high-water mark survives fork and exec).
  // Cold start: every preset but tiny, against tiny, whose figures are then mostly the fixed costs
  // (node, tsx, imports, graph building); tiny alone only when it is the only preset.
  const coldStart = (preset: PresetName): ColdStartPlan | undefined =>
    preset !== 'tiny' ? { reference: 'tiny' } : presets.length === 1 ? {} : undefined;
  const runs = (presets as PresetName[]).map((preset) => new PresetRun(preset, coldStart(preset)));
  for (const run of runs) await run.prepare();
  for (const run of runs) await run.measureColdStart();
  const figures: Partial<Record<PresetName, PresetFigures>> = {};
  for (const run of runs) figures[run.preset] = await run.measure();
  // The image processor on a 4096×4096 JPEG (no model involved): the same for every preset.
  const preprocess = await (await import('./measure-preprocess.ts')).measurePreprocess((line) => process.stderr.write(`bench: ${line}\n`));
  const totalSeconds = (performance.now() - start) / 1000;
  const loadAfter = os.loadavg()[0];
  process.stderr.write(`bench: ${totalSeconds.toFixed(1)} s in all; load average ${loadAfter.toFixed(2)} at the end\n`);
  const top = { total_seconds: totalSeconds, load_average_start: loadBefore, load_average_end: loadAfter, ...preprocess };
  process.stdout.write(benchReportLine(figures, top) + '\n');
}

/** Whether a preset measures cold start, and against which smaller preset. */
interface ColdStartPlan {
  reference?: PresetName;
}

/**
 * One preset's bench: its checkpoint and load figures first, its cold start (children), then the
 * in-process measurements (the engine's, then precision, which loads bundles of its own).
 */
class PresetRun {
  private readonly partSeconds: Record<string, number> = {};
  private prepared: { dir: string; checkpointMiB: number; load: LoadFigures } | undefined;
  private coldStartFigures: ColdStartFigures | undefined;

  constructor(
    readonly preset: PresetName,
    private readonly coldStart: ColdStartPlan | undefined,
  ) {}

  async prepare(): Promise<void> {
    const { dir, written } = await this.part('checkpoint', () => benchCheckpoint(this.preset));
    const checkpointMiB = sizeOnDisk(dir) / MiB;
    this.log(`checkpoint ${dir}: ${checkpointMiB.toFixed(1)} MiB on disk (${written ? 'written now' : 'cached'})`);
    const load = await this.part('load_child', () => measureLoad(dir));
    this.log(`load in a fresh process: ${load.load_s.toFixed(1)} s, peak RSS ${load.load_peak_rss_mb.toFixed(0)} MiB ` +
      `(own address space: ${load.load_vmhwm_mb.toFixed(0)} MiB; before loading ${load.baseline_peak_rss_mb.toFixed(0)} MiB, after the peak ` +
      `${load.loaded_rss_mb.toFixed(0)} MiB; checkpoint ${checkpointMiB.toFixed(0)} MiB); the first image decode creates the VQ decoder: ` +
      `peak ${load.first_decode_peak_rss_mb.toFixed(0)} MiB`);
    this.prepared = { dir, checkpointMiB, load };
  }

  async measureColdStart(): Promise<void> {
    if (!this.prepared) throw new Error('prepare() first');
    if (!this.coldStart) return;
    const referenceDir = this.coldStart.reference && benchCheckpoint(this.coldStart.reference).dir;
    try {
      this.coldStartFigures = await this.part('cold_start', () => measureColdStart(this.prepared!.dir, { referenceDir }));
    } catch (e) {
      // another process (a running `anole serve`, say) holds ONNX Runtime: the rest of the bench still runs
      if (!(e instanceof ColdStartRefused)) throw e;
      this.log(`cold start not measured: ${e.message}`);
      return;
    }
    for (const line of describeColdStart(this.coldStartFigures, this.coldStart.reference)) this.log(line);
  }

  async measure(): Promise<PresetFigures> {
    if (!this.prepared) throw new Error('prepare() first');
    const { dir, checkpointMiB, load } = this.prepared;
    // imported here, after every cold start: these load ONNX Runtime into this process
    const { measureEngine } = await import('./measure-engine.ts');
    const { measurePrecision, PRECISION_LABELS } = await import('./measure-precision.ts');
    const engine = await measureEngine(this.preset, dir, (name, run) => this.part(name, run), (line) => this.log(line));
    const precision = await this.part('precision', () => measurePrecision(dir, { tokens: 64 }));
    // continuous against static batching: minutes of images on small, nothing to learn from tiny's 16-token ones
    const batching = this.preset === 'small' ? await this.part('batching', async () => {
      const { measureBatching } = await import('./measure-batching.ts');
      const { openCheckpoint } = await import('../sidecar/weights/checkpoint.ts');
      return measureBatching(openCheckpoint(dir), (line) => this.log(line));
    }) : undefined;
    for (const [key, p] of Object.entries(precision)) {
      this.log(
        `precision, ${PRECISION_LABELS[key]}: top-1 ${(p.top1_agreement * 100).toFixed(1)}%, mean KL ${p.mean_kl.toExponential(2)}, ` +
          `weights ${p.weights_mb.toFixed(0)} MiB (${p.bundle_mb.toFixed(0)} MiB on disk), ${p.text_tokens_per_s.toFixed(1)} text tokens/s`,
      );
    }
    return {
      ...engine,
      ...load,
      precision,
      ...(batching ? { batching } : {}),
      ...(this.coldStartFigures ? { cold_start: coldStartGroup(this.coldStartFigures) } : {}),
      checkpoint_mb: checkpointMiB,
      part_seconds: this.partSeconds,
    };
  }

  private log(line: string): void {
    process.stderr.write(`[${this.preset}] ${line}\n`);
  }

  private async part<T>(name: string, run: () => Promise<T> | T): Promise<T> {
    const started = performance.now();
    const result = await run();
    this.partSeconds[name] = (performance.now() - started) / 1000;
    this.log(`-- ${name}: ${this.partSeconds[name].toFixed(1)} s`);
    return result;
  }
}

function coldStartGroup(figures: ColdStartFigures): FigureGroup {
  return { dropped_caches: figures.dropped_caches ? 1 : 0, hugepage_malloc: figures.hugepage_malloc ? 1 : 0, ...figures.models };
}
