import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';

/** The figures other tools read, as `<preset>.<name>` paths of the JSON line. */
export const REQUIRED_METRICS = [
  'image_tok_s_loop',
  'bytes_per_token_ctx1000',
  'cfg_cost_ratio',
  'seconds_per_image',
  'first_text_token_ms',
  'prefill_ms_per_token',
  'step_ms_per_token',
  'vq_encode_ms',
  'vq_decode_ms',
  'load_peak_rss_mb',
  'checkpoint_mb',
  // the production engine's rows (measure-engine-rows.ts, issue 16)
  'engine',
  'bytes_per_token_ctx100',
  'nodes_per_layer',
  'text_tok_s_ctx50',
  'text_tok_s_ctx1000',
  'image_tok_s_guided',
] as const;

/** Figures grouped under a name, to any depth (part_seconds; precision by variant; cold_start by model, then by stage). */
export interface FigureGroup {
  [name: string]: number | string | FigureGroup;
}

/** A preset's figures: the required ones and any others, plus nested groups. */
export type PresetFigures = Record<Exclude<(typeof REQUIRED_METRICS)[number], 'engine'>, number> & { engine: string } & FigureGroup;

const SIGNIFICANT_DIGITS = 4;

/**
 * The bench's last stdout line: {"tiny": {...}, "small": {...}, ...top} with every number rounded
 * to 4 significant digits (more would be noise on this machine). Throws, naming the path, when a
 * required figure is missing or any figure is not a finite number, because JSON would silently
 * turn NaN and Infinity into null and a reader would take that for a measurement.
 */
export function benchReportLine(presets: Partial<Record<PresetName, PresetFigures>>, top: Record<string, number> = {}): string {
  const report: Record<string, unknown> = {};
  for (const [preset, figures] of Object.entries(presets) as [PresetName, PresetFigures][]) {
    for (const name of REQUIRED_METRICS) if (!(name in figures)) throw new Error(`bench report: ${preset}.${name} is missing`);
    report[preset] = roundAll(figures, preset);
  }
  Object.assign(report, roundAll(top, ''));
  return JSON.stringify(report);
}

function roundAll(values: Record<string, unknown>, path: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).map(([key, value]) => {
      const where = path ? `${path}.${key}` : key;
      if (value !== null && typeof value === 'object') return [key, roundAll(value as Record<string, unknown>, where)];
      if (typeof value === 'string' && value !== '') return [key, value]; // a name, e.g. the production engine's
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`bench report: ${where} is ${String(value)}, not a finite number`);
      return [key, Number(value.toPrecision(SIGNIFICANT_DIGITS))];
    }),
  );
}
