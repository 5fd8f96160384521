import type { SequenceRequest } from '../contract/generation-request.ts';
import type { GenerationEvent } from '../sidecar/engine/sequence.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import type { Checkpoint } from '../sidecar/weights/checkpoint.ts';
import { benchRequest } from './bench-request.ts';
import type { FigureGroup } from './report.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';

/**
 * Continuous batching against static batching on one engine v2 (docs/engine-v2.md, "Continuous
 * batching"). Static is what the worker did before: it takes up to 4 jobs that have arrived (within
 * 100 ms of the first), runs them as one generate call, and takes no new job until all are done.
 * Continuous starts each job's call the moment it arrives. A job's first token is its first text
 * event, or for an image its first finished row of the token grid. Figures:
 *   ttft_alone_ms               a short text alone
 *   ttft_during_image_ms        the same text arriving while a guided image draws its third row
 *   static_ttft_during_image_ms the same under static batching (it waits for the image)
 *   throughput_8_vs_1           tokens/s of 8 guided images at once over 1 alone (their first 8 rows; medians)
 *   prefill_stall_ms            the longest gap in a running text's tokens while a 1,000-token prompt joins
 *                               (prefilled 256 tokens between steps), against prefill_stall_whole_ms (the
 *                               prompt prefilled in one run) and step_ms (the text's median gap before)
 *   arrivals.{continuous,static}.{ttft,completion}_{p50,p95}_ms, tokens_per_s: a fixed schedule of
 *     mixed jobs (short and long texts, images with and without guidance) arriving while others run
 * Reproduce: `npx tsx bench/measure-batching.ts [--preset small]`.
 */
export async function measureBatching(ckpt: Checkpoint, log: (line: string) => void): Promise<FigureGroup> {
  const c = ckpt.config!;
  const width = c.vq.quantStateDims[1];
  // slots long enough for the longest job here (a 1,000-token prompt and 64 tokens; an image), so that 8 guided images fit
  const context = Math.min(c.maxPositionEmbeddings, Math.max(1100, c.imageSeqLength + 64));
  const engine = await StepGenerator.load(ckpt, { intraOpNumThreads: 2, cacheContext: context, cacheBytes: 8 * 2 ** 30, maxSlots: 32 });
  const jobs = {
    shortText: () => benchRequest(c, { promptIds: syntheticPrompt(c, 50), mode: 'text', maxNewTokens: 32, guided: false }),
    longText: () => benchRequest(c, { promptIds: syntheticPrompt(c, 1000), mode: 'text', maxNewTokens: 64, guided: false }),
    image: (guided: boolean) => benchRequest(c, { promptIds: syntheticPrompt(c, 20), mode: 'image', maxNewTokens: c.imageSeqLength + 2, guided }),
  };
  try {
    await drain(engine.generate([jobs.shortText()])); // warm-up: the first run of each graph

    const ttftAlone = (await timed(engine, jobs.shortText(), performance.now())).firstTokenMs;
    log(`batching: short text alone, first token ${ttftAlone.toFixed(0)} ms`);

    // a text arrives while a guided image draws: continuous (then the image is canceled) and static
    const during = async (policy: 'continuous' | 'static') => {
      const stopImage = new AbortController();
      let text: Promise<Timing> | undefined;
      const image = timed(engine, { ...jobs.image(true), signal: stopImage.signal }, performance.now(), (e) => {
        if (e.type !== 'image_rows' || e.rows < 2 || text) return;
        const arrived = performance.now();
        text = policy === 'continuous' ? timed(engine, jobs.shortText(), arrived) : image.then(() => timed(engine, jobs.shortText(), arrived));
        if (policy === 'continuous') void text.then(() => stopImage.abort());
      });
      await image;
      return (await text!).firstTokenMs;
    };
    const ttftDuring = await during('continuous');
    log(`batching: the short text arriving during a guided image, first token ${ttftDuring.toFixed(0)} ms (continuous)`);
    const staticTtftDuring = await during('static');
    log(`batching: the same, static batching: ${staticTtftDuring.toFixed(0)} ms (it waits for the image)`);

    // tokens/s of 8 guided images at once over 1, over their first rows (then canceled)
    const rows = Math.min(8, c.vq.quantStateDims[0]);
    const firstRows = async (n: number) => {
      const started = performance.now();
      const before = engine.stats.tokens;
      await Promise.all(Array.from({ length: n }, (_, i) => untilRows(engine, { ...jobs.image(true), seed: 100 + i }, rows)));
      return ((engine.stats.tokens - before) * 1000) / (performance.now() - started);
    };
    // the stall a long prompt's prefill leaves in a running text: chunked (this engine) and whole (prefillChunk = context)
    const whole = await StepGenerator.load(ckpt, { intraOpNumThreads: 2, cacheContext: context, cacheBytes: 2 * 2 ** 30, maxSlots: 4, prefillChunk: context });
    let stall: { stepMs: number; stallMs: number };
    let stallWhole: { stepMs: number; stallMs: number };
    try {
      await drain(whole.generate([jobs.shortText()]));
      stall = await prefillStall(engine, jobs.shortText(), jobs.longText());
      stallWhole = await prefillStall(whole, jobs.shortText(), jobs.longText());
    } finally {
      await whole.release();
    }
    log(`batching: a 1,000-token prompt joining a running text: its longest gap ${stall.stallMs.toFixed(0)} ms chunked, ${stallWhole.stallMs.toFixed(0)} ms whole (a step: ${stall.stepMs.toFixed(0)} ms)`);

    // medians of 3 and 2: a few seconds each, and one image's rate varies most from run to run
    const one = median([await firstRows(1), await firstRows(1), await firstRows(1)]);
    const eight = median([await firstRows(8), await firstRows(8)]);
    log(`batching: guided images' first ${rows} rows: 1 at once ${one.toFixed(1)} tokens/s, 8 at once ${eight.toFixed(1)} tokens/s (${(eight / one).toFixed(2)}×)`);

    // a fixed schedule of arrivals under both policies
    const schedule: [number, () => SequenceRequest][] = [
      [0, () => jobs.image(true)],
      [400, jobs.shortText],
      [800, jobs.longText],
      [1200, () => jobs.image(false)],
      [2000, jobs.shortText],
      [3000, () => jobs.image(true)],
      [4000, jobs.shortText],
    ];
    const arrivals: FigureGroup = {};
    for (const policy of ['continuous', 'static'] as const) {
      const figures = await runSchedule(engine, schedule, policy);
      arrivals[policy] = figures;
      log(`batching: arrivals, ${policy}: first token p50 ${figures.ttft_p50_ms.toFixed(0)} / p95 ${figures.ttft_p95_ms.toFixed(0)} ms, completion p50 ${figures.completion_p50_ms.toFixed(0)} / p95 ${figures.completion_p95_ms.toFixed(0)} ms, ${figures.tokens_per_s.toFixed(1)} tokens/s`);
    }
    return {
      ttft_alone_ms: ttftAlone,
      ttft_during_image_ms: ttftDuring,
      static_ttft_during_image_ms: staticTtftDuring,
      throughput_8_vs_1: eight / one,
      step_ms: stall.stepMs,
      prefill_stall_ms: stall.stallMs,
      prefill_stall_whole_ms: stallWhole.stallMs,
      image_tok_s_1: one,
      image_tok_s_8: eight,
      slots: engine.capacity.slots,
      slot_context: engine.capacity.context,
      arrivals,
    };
  } finally {
    await engine.release();
  }
}

interface Timing {
  firstTokenMs: number;
  completionMs: number;
  tokens: number;
}

/** Runs one request, timing its first token and its end from `arrived`. */
async function timed(engine: StepGenerator, request: SequenceRequest, arrived: number, onEvent: (e: GenerationEvent) => void = () => {}): Promise<Timing> {
  let first: number | undefined;
  let tokens = 0;
  for await (const e of engine.generate([request])) {
    if (first === undefined && (e.type === 'text' || e.type === 'image_rows')) first = performance.now();
    if (e.type === 'done') tokens = e.tokens.length;
    onEvent(e);
  }
  const end = performance.now();
  return { firstTokenMs: (first ?? end) - arrived, completionMs: end - arrived, tokens };
}

/** Runs an image until `rows` rows of its grid are final, then cancels it. */
async function untilRows(engine: StepGenerator, request: SequenceRequest, rows: number): Promise<void> {
  const stop = new AbortController();
  for await (const e of engine.generate([{ ...request, signal: stop.signal }])) if (e.type === 'image_rows' && e.rows >= rows) stop.abort();
}

/**
 * A text runs with an event per token; after 20 tokens `joining` arrives. The running text's median gap
 * before, and its longest gap from the arrival until the joining prompt's first token.
 */
async function prefillStall(engine: StepGenerator, running: SequenceRequest, joining: SequenceRequest): Promise<{ stepMs: number; stallMs: number }> {
  const stop = new AbortController();
  const times: number[] = [];
  let arrived = 0;
  let joined = 0;
  let join: Promise<void> | undefined;
  for await (const e of engine.generate([{ ...running, maxNewTokens: 400, signal: stop.signal }], { chunkSize: 1 })) {
    if (e.type !== 'text') continue;
    times.push(performance.now());
    if (times.length === 20) {
      arrived = performance.now();
      join = (async () => {
        for await (const j of engine.generate([{ ...joining, maxNewTokens: 1 }])) if (j.type === 'done') joined = performance.now();
      })();
    }
    if (joined && times.at(-1)! > joined + 50) stop.abort();
  }
  await join;
  const gaps = times.slice(1).map((t, i) => [times[i], t - times[i]] as const);
  const before = gaps.filter(([at]) => at < arrived).map(([, g]) => g).sort((a, b) => a - b);
  const during = gaps.filter(([at, g]) => at + g >= arrived && at <= joined).map(([, g]) => g);
  return { stepMs: before[Math.floor(before.length / 2)], stallMs: Math.max(...during) };
}

async function drain(events: AsyncGenerator<GenerationEvent>): Promise<void> {
  for await (const _ of events) void _;
}

/**
 * Jobs arriving at their offsets (ms). Continuous: each call starts on arrival. Static: a call takes
 * what has arrived (up to 4, waiting 100 ms after the first for more) and runs it to the end.
 */
async function runSchedule(engine: StepGenerator, schedule: [number, () => SequenceRequest][], policy: 'continuous' | 'static') {
  const start = performance.now();
  const at = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, start + ms - performance.now())));
  const timings: Timing[] = [];
  if (policy === 'continuous') {
    await Promise.all(schedule.map(async ([offset, make], i) => {
      await at(offset);
      timings[i] = await timed(engine, make(), performance.now());
    }));
  } else {
    const arrived: { i: number; request: SequenceRequest; at: number }[] = [];
    schedule.forEach(([offset, make], i) => void at(offset).then(() => arrived.push({ i, request: make(), at: performance.now() })));
    let next = 0;
    while (next < schedule.length) {
      while (arrived.length === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100)); // the worker's batch window
      const batch = arrived.splice(0, 4);
      const first: (number | undefined)[] = batch.map(() => undefined);
      const ends: number[] = [];
      const tokens: number[] = [];
      for await (const e of engine.generate(batch.map((b) => b.request))) {
        if (first[e.sequence] === undefined && (e.type === 'text' || e.type === 'image_rows')) first[e.sequence] = performance.now();
        if (e.type === 'done') [ends[e.sequence], tokens[e.sequence]] = [performance.now(), e.tokens.length];
      }
      // a static batch's calls end together: the worker records each job at its `done`
      batch.forEach((b, k) => (timings[b.i] = { firstTokenMs: (first[k] ?? ends[k]) - b.at, completionMs: ends[k] - b.at, tokens: tokens[k] }));
      next += batch.length;
    }
  }
  const wall = performance.now() - start;
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  };
  const ttft = timings.map((t) => t.firstTokenMs);
  const completion = timings.map((t) => t.completionMs);
  return {
    ttft_p50_ms: pct(ttft, 50),
    ttft_p95_ms: pct(ttft, 95),
    completion_p50_ms: pct(completion, 50),
    completion_p95_ms: pct(completion, 95),
    tokens_per_s: (timings.reduce((n, t) => n + t.tokens, 0) * 1000) / wall,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { openCheckpoint } = await import('../sidecar/weights/checkpoint.ts');
  const { benchCheckpoint } = await import('./bench-checkpoints.ts');
  const i = process.argv.indexOf('--preset');
  const preset = (i > 0 ? process.argv[i + 1] : 'small') as 'small' | 'tiny';
  const figures = await measureBatching(openCheckpoint(benchCheckpoint(preset).dir), (line) => process.stderr.write(`${line}\n`));
  console.log(JSON.stringify({ [preset]: { batching: figures } }));
}
