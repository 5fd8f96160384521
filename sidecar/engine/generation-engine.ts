import type { AnoleConfig } from '../../model/config.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import type { GenerationEvent } from './sequence.ts';
import type { StepGeneratorOptions } from './step-generator.ts';

export type { FinishReason, GenerationEvent } from './sequence.ts';

export interface GenerateOptions {
  /** Decode steps per delivery of events (a call's first token goes out at once). Default one row of the image grid. */
  chunkSize?: number;
  /** Cancels every sequence of the call before the next decode step. */
  signal?: AbortSignal;
  /**
   * Called when a sequence (its index in the call) takes its cache slots, before its prefill: until
   * then it waited for slots, which is no work of its own (the worker bills a job from here).
   */
  onAdmitted?: (sequence: number) => void;
}

/** Host↔runtime traffic and work of an engine, counted over every call. */
export interface TransferStats {
  runs: number;
  /** Of `runs`, the head runs on the image head. */
  imageHeadRuns: number;
  bytesIn: number;
  bytesOut: number;
  tokens: number;
  /** Times the decode runs were bound (once per batch size: shapes and addresses then stay). */
  bindings: number;
  /** Decoder steps run on chosen tokens (a token is handed out before its step). */
  steps: number;
}

/** What the worker, the CLI and the bench run. */
export interface GenerationEngine {
  readonly config: AnoleConfig;
  /** The cache slots (overlapping calls share them). */
  readonly capacity: { slots: number; context: number };
  readonly stats: TransferStats;
  generate(requests: SequenceRequest[], opts?: GenerateOptions): AsyncGenerator<GenerationEvent>;
  release(): Promise<void>;
}

/** The engine's name in the bench's report and `anole doctor`'s log. */
export const ENGINE_NAME = 'v2' as const;

/** Engine v2 (step-generator.ts, docs/engine-v2.md): the only engine since the Loop engine was deleted. */
export async function loadEngine(model: Checkpoint | ModelSource, opts: StepGeneratorOptions = {}): Promise<GenerationEngine & { name: typeof ENGINE_NAME }> {
  const { StepGenerator } = await import('./step-generator.ts');
  return Object.assign(await StepGenerator.load(asModelSource(model), opts), { name: ENGINE_NAME });
}
