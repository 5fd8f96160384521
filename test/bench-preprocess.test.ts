import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { measurePreprocess, syntheticJpeg } from '../bench/measure-preprocess.ts';
import { benchReportLine, REQUIRED_METRICS, type PresetFigures } from '../bench/report.ts';

// The bench's preprocessing figure, shaped and reported; no timing is judged here (the bench prints it).
describe('bench: preprocessing figure', () => {
  it('the synthetic upload is a baseline JPEG of the asked size', async () => {
    const meta = await sharp(await syntheticJpeg(640)).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['jpeg', 640, 640, 3]);
  });

  it('measures the whole processor and its decode and resize parts, and the report line carries them', async () => {
    const lines: string[] = [];
    const figures = await measurePreprocess((line) => lines.push(line), 1024, 1);
    expect(Object.keys(figures).sort()).toEqual(['preprocess_4096_decode_s', 'preprocess_4096_jpeg_s', 'preprocess_4096_resize_s']);
    for (const v of Object.values(figures)) expect(v).toBeGreaterThan(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^preprocess 1024×1024 JPEG .* → \[1, 3, 512, 512\]: [\d.]+ s \(decode [\d.]+ s, PIL LANCZOS resize [\d.]+ s; median of 1\)$/);

    const preset = Object.fromEntries(REQUIRED_METRICS.map((name) => [name, 1])) as PresetFigures;
    const report = JSON.parse(benchReportLine({ tiny: preset }, { total_seconds: 1, ...figures }));
    expect(report.preprocess_4096_jpeg_s).toBe(Number(figures.preprocess_4096_jpeg_s.toPrecision(4)));
  });
});
