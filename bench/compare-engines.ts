import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { Generator } from '../sidecar/engine/generator.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchCheckpoint } from './bench-checkpoints.ts';
import { benchRequest } from './bench-request.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeImageTokens, timeTextTokens, type TimedEngine } from './timed-generation.ts';

/**
 * Engine v2 against the Loop engine on one checkpoint, in one process, rounds interleaved so that
 * a slow spell of the machine hits both (docs/engine-v2.md has the figures and their history):
 *   npx tsx bench/compare-engines.ts [--preset small|tiny] [--rounds 3]
 * Prints one line per round and, last, a JSON line.
 */
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const preset = arg('preset', 'small') as PresetName;
const rounds = Number(arg('rounds', '3'));
const ckpt = openCheckpoint(benchCheckpoint(preset).dir);
const config = ckpt.config!;
const threads = { intraOpNumThreads: 2 };
const engines: [string, TimedEngine & { release(): Promise<void> }][] = [
  ['loop', await Generator.load(ckpt, threads)],
  ['v2', await StepGenerator.load(ckpt, threads)],
];
const v2 = engines[1][1] as StepGenerator;
const width = config.vq.quantStateDims[1];
const imageTokens = Math.min(config.imageSeqLength, 8 * width);

const rows: Record<string, (e: TimedEngine) => Promise<number>> = {
  text_tok_s_ctx50: (e) => textSpeed(e, 50, 64),
  text_tok_s_ctx1000: (e) => textSpeed(e, 1000, 64),
  image_tok_s_guided: (e) => imageSpeed(e, true),
  image_tok_s_unguided: (e) => imageSpeed(e, false),
};

async function textSpeed(e: TimedEngine, context: number, tokens: number): Promise<number> {
  const request = benchRequest(config, { promptIds: syntheticPrompt(config, context), mode: 'text', maxNewTokens: tokens, guided: false });
  const span = await timeTextTokens(e, request, undefined);
  return (1000 * span.tokens) / span.ms;
}

async function imageSpeed(e: TimedEngine, guided: boolean): Promise<number> {
  const request = benchRequest(config, { promptIds: syntheticPrompt(config, 20), mode: 'image', maxNewTokens: config.imageSeqLength + 2, guided });
  const span = await timeImageTokens(e, request, imageTokens, undefined);
  return (1000 * span.tokens) / span.ms;
}

/**
 * Bytes engine v2 moves between JavaScript and ONNX Runtime per steady decode step, per token: the
 * difference between a call of 80 tokens and one of 40, so that the prefill and the settings cancel.
 */
async function bytesPerToken(context: number): Promise<number> {
  const call = async (maxNewTokens: number) => {
    const request = benchRequest(config, { promptIds: syntheticPrompt(config, context), mode: 'text', maxNewTokens, guided: false });
    const before = { ...v2.stats };
    for await (const _ of v2.generate([request])) void _;
    return { bytes: v2.stats.bytesIn - before.bytesIn + v2.stats.bytesOut - before.bytesOut, tokens: v2.stats.tokens - before.tokens };
  };
  const [short, long] = [await call(40), await call(80)];
  return (long.bytes - short.bytes) / (long.tokens - short.tokens);
}

for (const [, e] of engines) for (const run of Object.values(rows)) await run(e); // warm-up
const results: Record<string, Record<string, number[]>> = Object.fromEntries(engines.map(([n]) => [n, Object.fromEntries(Object.keys(rows).map((k) => [k, []]))]));
for (let round = 1; round <= rounds; round++) {
  const order = round % 2 ? engines : [...engines].reverse();
  for (const [key, run] of Object.entries(rows)) {
    for (const [name, e] of order) results[name][key].push(await run(e));
    console.error(`round ${round} ${key}: ${engines.map(([n]) => `${n} ${results[n][key].at(-1)!.toFixed(1)}`).join(', ')} tok/s`);
  }
}
const summary = Object.fromEntries(engines.map(([n]) => [n, Object.fromEntries(Object.entries(results[n]).map(([k, v]) => [k, Number(median(v).toFixed(2))]))]));
const report = { preset, rounds, ...summary, v2_bytes_per_token_ctx100: await bytesPerToken(100), v2_bytes_per_token_ctx1000: await bytesPerToken(1000) };
for (const [, e] of engines) await e.release();
console.log(JSON.stringify(report));
