import { describe, expect, it } from 'vitest';
import { median } from '../bench/median.ts';
import { benchReportLine, REQUIRED_METRICS, type PresetFigures } from '../bench/report.ts';

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
