import { Generator } from '../sidecar/engine/generator.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { RANDOM_CHECKPOINT_PRESETS, type PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchCheckpoint, sizeOnDisk } from './bench-checkpoints.ts';
import { benchPlan } from './bench-plan.ts';
import { measureFirstToken } from './measure-first-token.ts';
import { measureWholeImage } from './measure-image.ts';
import { measureLoad } from './measure-load.ts';
import { measureTextModel } from './measure-text-model.ts';
import { measureThroughput } from './measure-throughput.ts';
import { measureTransfer } from './measure-transfer.ts';
import { measureVQ } from './measure-vq.ts';
import { benchReportLine, type PresetFigures } from './report.ts';

export interface BenchOptions {
  presets?: string[];
}

const MiB = 2 ** 20;

/**
 * `anole bench` (npm run bench): per preset, the model's costs (load memory, prefill, single
 * step, VQ encode/decode) and then generation (throughput with and without guidance for the
 * in-graph loop and the per-token baseline, bytes per token at context 1000, time to first
 * token, a whole image). Readable lines go to stderr as it runs, with each part's duration;
 * the last stdout line is one JSON object {"tiny": {...}, "small": {...}, "total_seconds"}.
 */
export async function runBench(opts: BenchOptions = {}): Promise<void> {
  const presets = opts.presets ?? ['tiny', 'small'];
  for (const p of presets) {
    if (!(p in RANDOM_CHECKPOINT_PRESETS)) throw new Error(`unknown preset ${p} (known: ${Object.keys(RANDOM_CHECKPOINT_PRESETS).join(', ')})`);
  }
  const start = performance.now();
  const figures: Partial<Record<PresetName, PresetFigures>> = {};
  for (const preset of presets as PresetName[]) figures[preset] = await benchPreset(preset);
  const totalSeconds = (performance.now() - start) / 1000;
  process.stderr.write(`bench: ${totalSeconds.toFixed(1)} s in all\n`);
  process.stdout.write(benchReportLine(figures, { total_seconds: totalSeconds }) + '\n');
}

async function benchPreset(preset: PresetName): Promise<PresetFigures> {
  const log = (line: string) => process.stderr.write(`[${preset}] ${line}\n`);
  const partSeconds: Record<string, number> = {};
  const part = async <T>(name: string, run: () => Promise<T> | T): Promise<T> => {
    const started = performance.now();
    const result = await run();
    partSeconds[name] = (performance.now() - started) / 1000;
    log(`-- ${name}: ${partSeconds[name].toFixed(1)} s`);
    return result;
  };

  const { dir, written } = await part('checkpoint', () => benchCheckpoint(preset));
  const checkpointMiB = sizeOnDisk(dir) / MiB;
  log(`checkpoint ${dir}: ${checkpointMiB.toFixed(1)} MiB on disk (${written ? 'written now' : 'cached'})`);

  const load = await part('load_child', () => measureLoad(dir));
  log(`load in a fresh process: ${load.load_s.toFixed(1)} s, peak RSS ${load.load_peak_rss_mb.toFixed(0)} MiB ` +
    `(process before loading ${load.baseline_peak_rss_mb.toFixed(0)} MiB, after the peak ${load.loaded_rss_mb.toFixed(0)} MiB; ` +
    `checkpoint ${checkpointMiB.toFixed(0)} MiB); first image decode adds the VQ decoder: peak ${load.first_decode_peak_rss_mb.toFixed(0)} MiB`);

  const ckpt = openCheckpoint(dir);
  const plan = benchPlan(preset, ckpt.config!);
  const textModel = await part('text_model', () => measureTextModel(ckpt, plan, log));
  const codec = await ImageCodec.load(ckpt);
  try {
    const vq = await part('vq', () => measureVQ(codec, plan, log));
    const generator = await part('generator_load', () => Generator.load(ckpt));
    try {
      const throughput = await part('throughput', () => measureThroughput(generator, plan, log));
      const transfer = await part('transfer', () => measureTransfer(generator, plan, log));
      const firstToken = await part('first_token', () => measureFirstToken(generator, plan, log));
      const wholeImage = await part('whole_image', () => measureWholeImage(generator, codec, plan, log));
      return {
        ...throughput,
        ...transfer,
        ...firstToken,
        ...wholeImage,
        ...textModel,
        ...vq,
        ...load,
        checkpoint_mb: checkpointMiB,
        part_seconds: partSeconds,
      };
    } finally {
      await generator.release();
    }
  } finally {
    await codec.release();
  }
}
