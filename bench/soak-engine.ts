import { loadEngine } from '../sidecar/engine/generation-engine.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { benchCheckpoint } from './bench-checkpoints.ts';
import { benchRequest } from './bench-request.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';

/**
 * Engine v2 soak (docs/engine-v2.md): many short requests (guided images, short texts, in batches
 * of 1–3), STEPS decode steps in all, resident memory sampled after a warm-up. A handle leaked per
 * batch or per step shows as growth. Prints one line per sample and a JSON line last.
 *   npx tsx bench/soak-engine.ts [--steps 10000] [--warmup 1000]
 */
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const steps = arg('steps', 10000);
const warmup = arg('warmup', 1000);
const engine = await loadEngine(openCheckpoint(benchCheckpoint('tiny').dir), { intraOpNumThreads: 1 });
const config = engine.config;
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
const samples: { steps: number; rss: number }[] = [];
let done = 0;
let next = warmup;
for (let k = 0; done < steps; k++) {
  const prompt = syntheticPrompt(config, 5 + (k % 7));
  const requests = Array.from({ length: 1 + (k % 3) }, (_, i) =>
    i % 2 === 0
      ? benchRequest(config, { promptIds: prompt, mode: 'image', maxNewTokens: config.imageSeqLength + 2, guided: true })
      : benchRequest(config, { promptIds: prompt, mode: 'text', maxNewTokens: 4 + (k % 5), guided: false }),
  );
  const before = engine.stats.runs;
  for await (const _ of engine.generate(requests)) void _;
  done += (engine.stats.runs - before) / 2; // two runs per decode step (prefills are a few more)
  if (done >= next) {
    samples.push({ steps: Math.round(done), rss: rssMiB() });
    console.error(`${Math.round(done)} steps: RSS ${rssMiB().toFixed(1)} MiB`);
    next += 1000;
  }
}
await engine.release();
const first = samples[0].rss;
const spread = Math.max(...samples.map((s) => Math.abs(s.rss - first))) / first;
console.log(JSON.stringify({ engine: engine.name, steps: Math.round(done), warmup, rss_first_mib: first, rss_last_mib: samples.at(-1)!.rss, max_deviation: spread }));
