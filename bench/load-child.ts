/**
 * Child-process entry of the load measurement (measure-load.ts starts it fresh per checkpoint, so
 * nothing loaded before counts): loads a checkpoint as the worker does (loadEngine: the engine's
 * sessions; ImageCodec: graphs built, sessions lazy), then decodes one image, which creates
 * the VQ decoder session. Prints one JSON line of peak RSS figures (MiB) and timings.
 *
 *   node --import tsx bench/load-child.ts <checkpoint dir>
 */
import fs from 'node:fs';
import { loadEngine } from '../sidecar/engine/generation-engine.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';

const peakMiB = () => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
const rssMiB = () => process.memoryUsage().rss / 1024 / 1024;
// maxRSS starts at the parent's RSS at spawn; VmHWM belongs to this address space alone (Linux).
const vmHwmMiB = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;

const dir = process.argv[2];
if (!dir) throw new Error('usage: load-child.ts <checkpoint dir>');

const baseline = peakMiB();
const start = performance.now();
const ckpt = openCheckpoint(dir);
const [generator, codec] = await Promise.all([loadEngine(ckpt), ImageCodec.load(ckpt)]);
const loadMs = performance.now() - start;
const loaded = { peak: peakMiB(), hwm: vmHwmMiB(), rss: rssMiB() };

const decodeStart = performance.now();
await codec.decode([new Array(codec.imageSeqLength).fill(0)]);
const decodeMs = performance.now() - decodeStart;

process.stdout.write(
  JSON.stringify({
    baseline_peak_rss_mb: baseline,
    load_peak_rss_mb: loaded.peak,
    load_vmhwm_mb: loaded.hwm,
    loaded_rss_mb: loaded.rss,
    load_s: loadMs / 1000,
    first_decode_peak_rss_mb: peakMiB(),
    first_decode_s: decodeMs / 1000,
  }) + '\n',
);
await Promise.all([generator.release(), codec.release()]);
