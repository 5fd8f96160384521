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
