/**
 * Cold start of the model on one checkpoint: process start → engine ready (what the sidecar waits
 * for before taking jobs) from the Hugging Face directory and from bundles of it, next to the
 * time to read the weight files once, all in fresh processes in the same run. With `dropCaches`
 * (root on Linux) the page cache is emptied before every figure, so "cold" means from disk.
 * Prints one JSON line.
 *
 *   npx tsx bench/measure-cold-start.ts <HF checkpoint dir> [--drop-caches]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import type { WeightDtype } from '../sidecar/graphs/precision.ts';

const CHILD = fileURLToPath(new URL('./cold-start-child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx/esm');

export interface ColdStartFigure {
  model: string;
  weights_mb: number;
  /** Reading the weight files once, in a fresh process. */
  read_ms: number;
  /** Process start → engine ready (includes node + tsx start-up). */
  ready_ms: number;
  /** openModel + Generator.load + ImageCodec.load alone. */
  load_ms: number;
  ready_over_read: number;
}

function child(mode: 'load' | 'read', dir: string, dropCaches: boolean): Record<string, number> {
  if (dropCaches) {
    execFileSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  }
  const run = spawnSync(process.execPath, ['--import', TSX, CHILD, mode, dir], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`cold-start-child ${mode} ${dir}: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function measureColdStart(hfDir: string, opts: { dropCaches?: boolean; repeats?: number; dtypes?: WeightDtype[] } = {}): Promise<ColdStartFigure[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cold-'));
  try {
    const models: [string, string][] = [['HF directory', hfDir]];
    for (const dtype of opts.dtypes ?? ['bf16', 'fp32', 'int4']) {
      const dir = path.join(tmp, dtype);
      await writeBundle({ from: hfDir, out: dir, precision: { dtype, target: 'cpu' } });
      models.push([`bundle ${dtype}`, dir]);
    }
    const out: ColdStartFigure[] = [];
    for (const [model, dir] of models) {
      const reads: number[] = [];
      const loads: Record<string, number>[] = [];
      let bytes = 0;
      for (let i = 0; i < (opts.repeats ?? 3); i++) {
        const r = child('read', dir, !!opts.dropCaches);
        reads.push(r.read_ms);
        bytes = r.bytes;
        loads.push(child('load', dir, !!opts.dropCaches));
      }
      const read = median(reads);
      const ready = median(loads.map((l) => l.ready_ms));
      out.push({
        model,
        weights_mb: Math.round(bytes / 2 ** 20),
        read_ms: Math.round(read),
        ready_ms: Math.round(ready),
        load_ms: Math.round(median(loads.map((l) => l.load_ms))),
        ready_over_read: Math.round((ready / read) * 100) / 100,
      });
    }
    return out;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: measure-cold-start.ts <HF checkpoint dir> [--drop-caches]');
  process.stdout.write(JSON.stringify(await measureColdStart(dir, { dropCaches: process.argv.includes('--drop-caches') })) + '\n');
}
