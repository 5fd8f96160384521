import { COLD_START_STAGES, FIXED_STAGES, STAGE_LABELS, type ColdStartStage } from './cold-start-stages.ts';
import { modelLabel, type ColdStartFigure, type ColdStartFigures, type ColdStartRun } from './measure-cold-start.ts';
import { median } from './median.ts';

const s = (ms: number) => (ms / 1000).toFixed(2);
const x = (ratio: number) => `${ratio.toFixed(1)}×`;
const fixedMs = (run: Pick<ColdStartRun, 'stages_ms'>) => FIXED_STAGES.reduce((sum, stage) => sum + run.stages_ms[stage], 0);

/**
 * The bench's readable lines for a cold-start measurement: per model its ratios and where the
 * time went (next to the smaller reference checkpoint's, so that what grows with the weights shows),
 * then which stages are fixed and which grew with the weights.
 */
export function describeColdStart(figures: ColdStartFigures, referenceName = 'reference'): string[] {
  const malloc = figures.hugepage_malloc ? 'malloc on huge pages as in the worker image' : 'malloc on 4 KiB pages';
  const lines = [`cold start, page cache ${figures.dropped_caches ? 'emptied before every figure' : 'left warm (not root)'}, ${malloc}; seconds:`];
  const models = Object.entries(figures.models);
  for (const [key, f] of models) {
    const perByte = f.per_byte_ratio === undefined ? '' : `; per byte ${x(f.per_byte_ratio)} against ${referenceName}`;
    lines.push(
      `  ${modelLabel(key)}, ${f.weights_mb.toFixed(0)} MiB: read ${s(f.read_ms)}, ready ${s(f.ready_ms)} = ${x(f.ready_over_read)} the read ` +
        `(${x(f.load_over_read)} without process start and imports)${perByte}; through the engine thread as the sidecar loads: ${s(f.engine_thread_ready_ms)}`,
    );
    if (f.worker_ready_ms !== undefined) {
      lines.push(`    the worker itself from the build (node dist/anole.mjs worker), start to its ready line: ${s(f.worker_ready_ms)} = ${x(f.worker_over_read!)} the read`);
    }
    if (f.capped) {
      lines.push(`    the disk's reads capped (a gp3 volume reads 125 MiB/s at its baseline; untouched weights are read on first use):`);
      for (const c of Object.values(f.capped)) {
        const ownRead = (c.worker_read_mb / c.read_cap_mib_s) * 1000; // ms for the bytes the worker did read
        lines.push(
          `      at ${c.read_cap_mib_s} MiB/s: read ${s(c.read_ms)}, the worker ${s(c.worker_ready_ms)} = ${x(c.worker_over_read)} the read; ` +
            `it had read ${c.worker_read_mb.toFixed(0)} MiB by then, ${x(c.worker_ready_ms / ownRead)} the ${s(ownRead)} those take`,
        );
      }
    }
    if (f.ready_without_hugepages_ms !== undefined) lines.push(`    without huge pages (GLIBC_TUNABLES unset): ready ${s(f.ready_without_hugepages_ms)}`);
    if (f.bundled) {
      lines.push(`    from the build (npm run build, no tsx): ready ${s(f.bundled.ready_ms)}, through the engine thread ${s(f.bundled.engine_thread_ready_ms)}`);
    }
    const stage = (name: ColdStartStage) =>
      `${STAGE_LABELS[name]} ${f.reference ? `${s(f.reference.stages_ms[name])} → ` : ''}${s(f.stages_ms[name])}`;
    const from = f.reference ? ` (${referenceName}, ${f.reference.weights_mb.toFixed(0)} MiB: read ${s(f.reference.read_ms)}, ready ${s(f.reference.ready_ms)} → this)` : '';
    lines.push(`    stages${from}: ${COLD_START_STAGES.map(stage).join('; ')}`);
  }
  if (figures.read_cap_unavailable) lines.push(`  reads not capped: ${figures.read_cap_unavailable}`);
  if (models.length > 0) {
    const runs = models.flatMap(([, f]) => (f.reference ? [f, f.reference] : [f]));
    const thread = median(models.map(([, f]) => f.engine_thread_ready_ms - f.ready_ms));
    lines.push(
      `  fixed, whatever the model: ${FIXED_STAGES.map((name) => STAGE_LABELS[name]).join(' and ')}, ${s(median(runs.map(fixedMs)))} in all (median), ` +
        `and the engine thread's own start, ${s(thread)} more`,
    );
    const bundled = models.flatMap(([, f]) => (f.bundled ? [f.bundled] : []));
    if (bundled.length > 0) {
      lines.push(
        `  the same from the build: ${s(median(bundled.map(fixedMs)))} (node, the bundle and its native packages; then the engine's modules), ` +
          `and the engine thread's own start, ${s(median(bundled.map((b) => b.engine_thread_ready_ms - b.ready_ms)))} more`,
      );
    }
    const grown = growingStages(models.map(([, f]) => f));
    if (grown) {
      lines.push(
        `  grew with the weights from ${referenceName} to this (by more than a quarter of the extra read time, in some model): ` +
          `${grown.map((name) => STAGE_LABELS[name]).join('; ') || 'none'}; the others grew by less`,
      );
    }
  }
  return lines;
}

/** The stages that grew from the reference by more than a quarter of the growth of the read time, in any model (undefined without references). */
function growingStages(figures: ColdStartFigure[]): ColdStartStage[] | undefined {
  if (!figures.every((f) => f.reference)) return undefined;
  return COLD_START_STAGES.filter((stage) =>
    figures.some((f) => f.stages_ms[stage] - f.reference!.stages_ms[stage] > 0.25 * (f.read_ms - f.reference!.read_ms)),
  );
}
