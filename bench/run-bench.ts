import os from 'node:os';
import { Generator } from '../sidecar/engine/generator.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { RANDOM_CHECKPOINT_PRESETS, type PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchCheckpoint, sizeOnDisk } from './bench-checkpoints.ts';
import { benchPlan } from './bench-plan.ts';
import { describeColdStart } from './describe-cold-start.ts';
import { measureColdStartInChild, type ColdStartFigures } from './measure-cold-start.ts';
import { measureFirstToken } from './measure-first-token.ts';
import { measureWholeImage } from './measure-image.ts';
import { measureLoad, type LoadFigures } from './measure-load.ts';
import { measurePrecision, PRECISION_LABELS } from './measure-precision.ts';
import { measureTextModel } from './measure-text-model.ts';
import { measureThroughput } from './measure-throughput.ts';
import { measureTransfer } from './measure-transfer.ts';
import { measureVQ } from './measure-vq.ts';
import { benchReportLine, type FigureGroup, type PresetFigures } from './report.ts';

export interface BenchOptions {
  presets?: string[];
}

const MiB = 2 ** 20;

/**
 * `anole bench` (npm run bench): per preset, the model's costs (load memory, prefill, single
 * step, VQ encode/decode) and then generation (throughput with and without guidance for the
 * in-graph loop and the per-token baseline, bytes per token at context 1000, time to first
 * token, a whole image), then precision (fp32 / int8 / int4 bundles against the checkpoint) and
 * cold start (fresh processes: ready against reading the weights once). Readable lines go to
 * stderr as it runs, with each part's duration; the last stdout line is one JSON object
 * {"tiny": {...}, "small": {...}, "total_seconds", the 1-minute load averages at start and end}.
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
  const figures: Partial<Record<PresetName, PresetFigures>> = {};
  for (const run of runs) figures[run.preset] = await run.measure();
  const totalSeconds = (performance.now() - start) / 1000;
  const loadAfter = os.loadavg()[0];
  process.stderr.write(`bench: ${totalSeconds.toFixed(1)} s in all; load average ${loadAfter.toFixed(2)} at the end\n`);
  const top = { total_seconds: totalSeconds, load_average_start: loadBefore, load_average_end: loadAfter };
  process.stdout.write(benchReportLine(figures, top) + '\n');
}

/** Whether a preset measures cold start, and against which smaller preset. */
interface ColdStartPlan {
  reference?: PresetName;
}

/**
 * One preset's bench: its checkpoint and load figures first, then the in-process measurements,
 * then the ones that load models of their own (precision in process, cold start in children).
 */
class PresetRun {
  private readonly partSeconds: Record<string, number> = {};
  private prepared: { dir: string; checkpointMiB: number; load: LoadFigures } | undefined;

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

  async measure(): Promise<PresetFigures> {
    if (!this.prepared) throw new Error('prepare() first');
    const { dir, checkpointMiB, load } = this.prepared;
    const engine = await this.measureEngine(dir);
    const precision = await this.part('precision', () => measurePrecision(dir, { tokens: 64 }));
    for (const [key, p] of Object.entries(precision)) {
      this.log(
        `precision, ${PRECISION_LABELS[key]}: top-1 ${(p.top1_agreement * 100).toFixed(1)}%, mean KL ${p.mean_kl.toExponential(2)}, ` +
          `weights ${p.weights_mb.toFixed(0)} MiB (${p.bundle_mb.toFixed(0)} MiB on disk), ${p.text_tokens_per_s.toFixed(1)} text tokens/s`,
      );
    }
    const coldStart = this.coldStart && (await this.part('cold_start', () => this.measureColdStart(dir, this.coldStart!)));
    return {
      ...engine,
      ...load,
      precision,
      ...(coldStart ? { cold_start: coldStartGroup(coldStart) } : {}),
      checkpoint_mb: checkpointMiB,
      part_seconds: this.partSeconds,
    };
  }

  private async measureColdStart(dir: string, plan: ColdStartPlan): Promise<ColdStartFigures> {
    const referenceDir = plan.reference && benchCheckpoint(plan.reference).dir;
    // in a child: this process has loaded ONNX Runtime, whose library would then stay cached
    const figures = await measureColdStartInChild(dir, referenceDir);
    for (const line of describeColdStart(figures, plan.reference)) this.log(line);
    return figures;
  }

  /** The measurements on one loaded text model, image codec and generator. */
  private async measureEngine(dir: string) {
    const log = (line: string) => this.log(line);
    const ckpt = openCheckpoint(dir);
    const plan = benchPlan(this.preset, ckpt.config!);
    const textModel = await this.part('text_model', () => measureTextModel(ckpt, plan, log));
    const codec = await ImageCodec.load(ckpt);
    try {
      const vq = await this.part('vq', () => measureVQ(codec, plan, log));
      const generator = await this.part('generator_load', () => Generator.load(ckpt));
      try {
        const throughput = await this.part('throughput', () => measureThroughput(generator, plan, log));
        const transfer = await this.part('transfer', () => measureTransfer(generator, plan, log));
        const firstToken = await this.part('first_token', () => measureFirstToken(generator, plan, log));
        const wholeImage = await this.part('whole_image', () => measureWholeImage(generator, codec, plan, log));
        return {
          ...throughput,
          ...transfer,
          ...firstToken,
          ...wholeImage,
          ...textModel,
          ...vq,
        };
      } finally {
        await generator.release();
      }
    } finally {
      await codec.release();
    }
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
