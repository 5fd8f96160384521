import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coldProgram } from '../bench/cold-start-processes.ts';
import { COLD_START_STAGES, STAGE_LABELS, stagesOf } from '../bench/cold-start-stages.ts';
import { describeColdStart } from '../bench/describe-cold-start.ts';
import { ColdStartRefused, measureColdStart, perByteRatio, summarizeModel, summarizeRun, type ColdStartRun, type LoadSample, type Samples } from '../bench/measure-cold-start.ts';
import { median } from '../bench/median.ts';
import { benchReportLine, REQUIRED_METRICS, type PresetFigures } from '../bench/report.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/** The shaping of the bench's JSON line (no timing here: the figures are made up). */
function figures(scale: number): PresetFigures {
  const entries = REQUIRED_METRICS.map((name, i) => [name, (i + 1) * scale + 1 / 3]);
  return { ...Object.fromEntries(entries), part_seconds: { throughput: 12.345678 } } as PresetFigures;
}

describe('benchReportLine', () => {
  it('nests every required figure under its preset, rounded to 4 significant digits, and keeps extra figures', () => {
    const line = benchReportLine({ tiny: figures(1), small: { ...figures(1000), image_tok_s_loop_unguided: 2 / 3 } }, { total_seconds: 301.23456 });
    expect(line).not.toContain('\n');
    const report = JSON.parse(line);
    expect(Object.keys(report)).toEqual(['tiny', 'small', 'total_seconds']);
    REQUIRED_METRICS.forEach((name, i) => {
      expect(report.tiny[name]).toBe(Number(((i + 1) + 1 / 3).toPrecision(4)));
      expect(report.small[name]).toBe(Number(((i + 1) * 1000 + 1 / 3).toPrecision(4)));
    });
    expect(report.small.image_tok_s_loop_unguided).toBe(0.6667);
    expect(report.tiny.part_seconds).toEqual({ throughput: 12.35 });
    expect(report.total_seconds).toBe(301.2);
  });

  it('rounds and keeps groups nested to any depth (cold start by model, then by stage)', () => {
    const coldStart = { dropped_caches: 1, hf_dir: { ready_ms: 9204.4444, stages_ms: { open: 12.34567 }, reference: { stages_ms: { open: 1 / 3 } } } };
    const report = JSON.parse(benchReportLine({ small: { ...figures(1), cold_start: coldStart } }));
    expect(report.small.cold_start).toEqual({ dropped_caches: 1, hf_dir: { ready_ms: 9204, stages_ms: { open: 12.35 }, reference: { stages_ms: { open: 0.3333 } } } });
    expect(() => benchReportLine({ small: { ...figures(1), cold_start: { hf_dir: { stages_ms: { open: NaN } } } } })).toThrow('small.cold_start.hf_dir.stages_ms.open is NaN');
  });

  it('names a missing required figure', () => {
    const { cfg_cost_ratio: _, ...rest } = figures(1);
    expect(() => benchReportLine({ small: rest as PresetFigures })).toThrow('small.cfg_cost_ratio is missing');
  });

  it('refuses NaN and Infinity, which JSON would turn into null, naming where they are', () => {
    expect(() => benchReportLine({ tiny: { ...figures(1), cfg_cost_ratio: NaN } })).toThrow('tiny.cfg_cost_ratio is NaN');
    expect(() => benchReportLine({ tiny: { ...figures(1), part_seconds: { vq: Infinity } } })).toThrow('tiny.part_seconds.vq is Infinity');
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones, whatever the order', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([40, 10, 30, 20])).toBe(25);
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('cold-start figures', () => {
  const stages = (ms: number) => Object.fromEntries(COLD_START_STAGES.map((stage) => [stage, ms])) as ColdStartRun['stages_ms'];

  it('takes the median read and the load whose ready time is the median, with that load\'s own stages', () => {
    const loads = [4000, 6000, 5000].map((ready_ms) => ({ ready_ms, stages_ms: stages(ready_ms / COLD_START_STAGES.length) }));
    const run = summarizeRun(2 ** 30, [300, 100, 200], loads);
    expect(run).toMatchObject({ weights_mb: 1024, read_ms: 200, ready_ms: 5000, ready_over_read: 25 });
    expect(run.stages_ms).toEqual(loads[2].stages_ms);
    // process start and imports (2 of the 6 stages) are left out of load_over_read
    expect(run.load_over_read).toBeCloseTo((5000 - (2 * 5000) / 6) / 200, 10);
  });

  it('per byte: the growth of ready time over the growth of read time, none when the reads did not grow', () => {
    const run = (read_ms: number, ready_ms: number): ColdStartRun => ({ weights_mb: 1, read_ms, ready_ms, ready_over_read: 0, load_over_read: 0, stages_ms: stages(0) });
    expect(perByteRatio(run(300, 9000), run(50, 2000))).toBe(28);
    expect(perByteRatio(run(50, 9000), run(60, 2000))).toBeUndefined();
  });

  it('tells the fixed stages and the ones that grew with the weights apart, from the figures', () => {
    const run = (read_ms: number, session: number): ColdStartRun => {
      const stages_ms = { ...stages(100), generator_session: session };
      const ready_ms = Object.values(stages_ms).reduce((a, b) => a + b, 0);
      return { weights_mb: 1, read_ms, ready_ms, ready_over_read: ready_ms / read_ms, load_over_read: 0, stages_ms };
    };
    const model = (session: number, refSession: number) => ({ ...run(500, session), engine_thread_ready_ms: 0, engine_thread_over_read: 0, reference: run(20, refSession) });
    const lines = describeColdStart({ dropped_caches: true, hugepage_malloc: true, models: { hf_dir: model(6000, 500), bundle_int4: model(700, 400) } }, 'tiny');
    const last = lines.at(-1)!;
    expect(last).toContain(`grew with the weights from tiny to this`);
    expect(last).toContain(STAGE_LABELS.generator_session);
    for (const stage of COLD_START_STAGES.filter((name) => name !== 'generator_session')) expect(last).not.toContain(STAGE_LABELS[stage]);
    expect(lines.at(-2)).toContain(`${STAGE_LABELS.process_start} and ${STAGE_LABELS.imports}, 0.20 in all`);
  });

  it('capped reads: the worker against reading all the weights, and against reading what it had read by ready', () => {
    const run: ColdStartRun = { weights_mb: 400, read_ms: 100, ready_ms: 1000, ready_over_read: 10, load_over_read: 5, stages_ms: stages(100) };
    const capped = { '125_mib_s': { read_cap_mib_s: 125, read_ms: 3200, worker_ready_ms: 1600, worker_over_read: 0.5, worker_read_mb: 100 } };
    const lines = describeColdStart({ dropped_caches: true, hugepage_malloc: true, models: { bundle_int4: { ...run, engine_thread_ready_ms: 1100, engine_thread_over_read: 11, capped } } });
    // 100 MiB at 125 MiB/s take 0.8 s: the worker's 1.6 s are twice that
    expect(lines).toContain('      at 125 MiB/s: read 3.20, the worker 1.60 = 0.5× the read; it had read 100 MiB by then, 2.0× the 0.80 those take');
  });

  it('a load\'s stages are the spans between its instants, so they add up to its ready time', () => {
    const stages_ms = stagesOf({ started: 400, imported: 900, opened: 950, generatorGraphMs: 120, generatorDone: 1700, ready: 1900 });
    expect(stages_ms).toEqual({ process_start: 400, imports: 500, open: 50, generator_graph: 120, generator_session: 630, codec: 200 });
    expect(Object.keys(stages_ms)).toEqual([...COLD_START_STAGES]);
    expect(COLD_START_STAGES.reduce((sum, stage) => sum + stages_ms[stage], 0)).toBe(1900);
  });

  it('one model\'s figures from its samples: medians of every kind, the median load\'s stages, the bundled and capped starts, the reference', () => {
    const load = (ready: number): LoadSample => ({ ready_ms: ready, stages_ms: stagesOf({ started: 100, imported: 300, opened: 310, generatorGraphMs: 40, generatorDone: ready - 50, ready }) });
    const main: Samples = {
      bytes: 400 * 2 ** 20,
      reads: [900, 300, 500],
      loads: [load(2400), load(2000), load(3000)],
      threads: [2600, 3500, 2300],
      loadsWithoutHugepages: [2900, 2700, 2800],
      bundledLoads: [load(1800), load(1500), load(1600)],
      bundledThreads: [1900, 1700, 2100],
      workers: [4000, 3000, 3500],
      capped: new Map([[125, { reads: [3300, 3200, 3400], workers: [{ ready_ms: 5000, read_bytes: 200 * 2 ** 20 }, { ready_ms: 4000, read_bytes: 100 * 2 ** 20 }, { ready_ms: 4500, read_bytes: 150 * 2 ** 20 }] }]]),
    };
    const reference: Samples = { ...main, bytes: 100 * 2 ** 20, reads: [100, 120, 110], loads: [load(1100), load(1000), load(1200)], capped: new Map() };
    const f = summarizeModel(main, reference);
    expect(f).toMatchObject({ weights_mb: 400, read_ms: 500, ready_ms: 2400, ready_over_read: 4.8, engine_thread_ready_ms: 2600, engine_thread_over_read: 5.2 });
    expect(f.load_over_read).toBeCloseTo((2400 - 300) / 500, 10); // process start and imports: 100 + 200
    expect(f.stages_ms).toEqual(load(2400).stages_ms);
    expect(f.ready_without_hugepages_ms).toBe(2800);
    expect([f.worker_ready_ms, f.worker_over_read]).toEqual([3500, 7]);
    expect(f.bundled).toEqual({ ready_ms: 1600, stages_ms: load(1600).stages_ms, engine_thread_ready_ms: 1900 });
    expect(f.capped).toEqual({ '125_mib_s': { read_cap_mib_s: 125, read_ms: 3300, worker_ready_ms: 4500, worker_over_read: 4500 / 3300, worker_read_mb: 150 } });
    expect(f.reference).toMatchObject({ weights_mb: 100, read_ms: 110, ready_ms: 1100, stages_ms: load(1100).stages_ms });
    expect(f.per_byte_ratio).toBeCloseTo((2400 - 1100) / (500 - 110), 10);

    // what a model measured from the sources only has (no build, no reference, one repeat) is all it shows
    const plain = summarizeModel({ ...main, reads: [500], loads: [load(2400)], threads: [2600], loadsWithoutHugepages: [], bundledLoads: [], bundledThreads: [], workers: [], capped: new Map() });
    expect(Object.keys(plain).sort()).toEqual(['engine_thread_over_read', 'engine_thread_ready_ms', 'load_over_read', 'read_ms', 'ready_ms', 'ready_over_read', 'stages_ms', 'weights_mb']);

    const lines = describeColdStart({ dropped_caches: false, hugepage_malloc: true, models: { hf_dir: f }, read_cap_unavailable: 'the page cache is left warm (not root), so reads would not reach the disk' }).join('\n');
    for (const said of ['HF directory, 400 MiB: read 0.50, ready 2.40 = 4.8× the read', 'the worker itself from the build', 'from the build (npm run build, no tsx): ready 1.60', 'without huge pages (GLIBC_TUNABLES unset): ready 2.80', 'at 125 MiB/s', 'reads not capped: the page cache is left warm'])
      expect(lines).toContain(said);
    for (const stage of COLD_START_STAGES) expect(lines).toContain(STAGE_LABELS[stage]);
  });

  it('cold children run a copy of node, and the native libraries running processes map (which stay cached) are named', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cold-program-'));
    try {
      await import('onnxruntime-node');
      const program = coldProgram(dir);
      expect(program.node).not.toBe(process.execPath);
      expect(execFileSync(program.node, ['-p', 'process.version'], { encoding: 'utf8' }).trim()).toBe(process.version);
      expect(program.mapped.some((file) => file.includes('libonnxruntime.so.1') && file.includes(String(process.pid)))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('on a tiny checkpoint', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cold-test-'));
      writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 3 });
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('refuses to measure from disk while a running process maps a native library the children load (this one, here)', async () => {
      await import('onnxruntime-node');
      const measuring = measureColdStart(path.join(dir, 'ckpt'), { repeats: 1, dtypes: [], dropCaches: true, bundled: false });
      await expect(measuring).rejects.toBeInstanceOf(ColdStartRefused);
      await expect(measuring).rejects.toThrow(/libonnxruntime\.so\.1 \(process .*\)/);
    });
  });
});
