/**
 * Where a cold start's time goes, in order; the stages add up to the time from process start to
 * ready. The first two are the same for any model (node and tsx, then the engine's modules with
 * onnxruntime-node's native binding); the rest are the model's.
 */
export const COLD_START_STAGES = ['process_start', 'imports', 'open', 'generator_graph', 'generator_session', 'codec'] as const;
export type ColdStartStage = (typeof COLD_START_STAGES)[number];

export const STAGE_LABELS: Record<ColdStartStage, string> = {
  process_start: 'node + tsx start',
  imports: 'engine imports',
  open: 'open (config, manifest, validation)',
  generator_graph: 'generator graph (built, or read from the bundle)',
  generator_session: 'generator session (ONNX Runtime: weights, optimizations, prepacking)',
  codec: 'image codec (VQ graphs; sessions on first use)',
};

/** The stages that cost the same whatever the model. */
export const FIXED_STAGES: readonly ColdStartStage[] = ['process_start', 'imports'];

/** The instants of one load, in ms since its process started (performance.now() in cold-start-child.ts). */
export interface LoadMarks {
  /** This module's first line ran: node and tsx (or the bundle) are up. */
  started: number;
  imported: number;
  opened: number;
  /** Time spent making the generator's graph, inside opened → generatorDone. */
  generatorGraphMs: number;
  generatorDone: number;
  ready: number;
}

/** Where a load's time went, stage by stage: consecutive spans from process start, so they add up to `ready`. */
export function stagesOf(m: LoadMarks): Record<ColdStartStage, number> {
  return {
    process_start: m.started,
    imports: m.imported - m.started,
    open: m.opened - m.imported,
    generator_graph: m.generatorGraphMs,
    generator_session: m.generatorDone - m.opened - m.generatorGraphMs,
    codec: m.ready - m.generatorDone,
  };
}
