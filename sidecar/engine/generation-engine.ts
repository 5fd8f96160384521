import type { AnoleConfig } from '../../model/config.ts';
import { stepCapable } from '../graphs/model-graphs.ts';
import type { SessionConfig } from '../onnx/session.ts';
import type { CacheSettings } from './slot-capacity.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import type { GenerateOptions, TransferStats } from './generator.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import type { GenerationEvent } from './sequence.ts';

/** What the worker, the CLI and the bench run, whichever engine it is. */
export interface GenerationEngine {
  readonly config: AnoleConfig;
  /** Engine v2's cache slots (overlapping calls share them); the Loop engine has none. */
  readonly capacity?: { slots: number; context: number };
  readonly stats: TransferStats;
  generate(requests: SequenceRequest[], opts?: GenerateOptions): AsyncGenerator<GenerationEvent>;
  release(): Promise<void>;
}

/**
 * v2: the cache stays in ONNX Runtime (step-generator.ts); loop: the in-graph Loop (generator.ts),
 * the bench's baseline, and what a `--target cuda --dtype fp32` model runs (GroupQueryAttention has
 * no float32 CUDA kernel, so engine v2 has no graphs for it).
 */
export type EngineName = 'v2' | 'loop';

export function engineFor(source: ModelSource): EngineName {
  return stepCapable(source.precision) ? 'v2' : 'loop';
}

export async function loadEngine(model: Checkpoint | ModelSource, opts: SessionConfig & CacheSettings & { imageHead?: boolean; engine?: EngineName } = {}): Promise<GenerationEngine & { name: EngineName }> {
  const source = asModelSource(model);
  const name = opts.engine ?? engineFor(source);
  if (name === 'v2') {
    const { StepGenerator } = await import('./step-generator.ts');
    return Object.assign(await StepGenerator.load(source, opts), { name });
  }
  const { Generator } = await import('./generator.ts');
  const loop = await Generator.load(source, opts);
  return Object.assign(loop, { name, generate: oneCallAtATime(loop.generate.bind(loop)) });
}

/**
 * The Loop engine runs one batch at a time (its cache crosses JavaScript between chunks): calls that
 * overlap take turns in order of arrival, where engine v2 would batch them together.
 */
export function oneCallAtATime(generate: GenerationEngine['generate']): GenerationEngine['generate'] {
  let last: Promise<void> = Promise.resolve();
  return async function* (requests, opts) {
    let done!: () => void;
    const previous = last;
    last = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      yield* generate(requests, opts);
    } finally {
      done();
    }
  };
}
