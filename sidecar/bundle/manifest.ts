import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Precision } from '../graphs/precision.ts';
import type { GraphName } from '../graphs/model-graphs.ts';

/**
 * manifest.json of a model bundle: what the bundle was built for and every file it holds, with
 * its size and sha256. A loader checks sizes (free) at every start; hashes are checked when a
 * bundle arrives from elsewhere (verifyBundle), not on every start, since hashing 14 GB of
 * weights costs about as much as reading them.
 */
export const BUNDLE_FORMAT = 'anole-bundle';
/**
 * v4: engine v2's graphs only (the Loop engine's loop-full, loop-image and generator are gone, and no
 * `--target cuda --dtype fp32`); v3: engine v2's graphs beside the Loop engine's; v2: the loops carry hidden states.
 */
export const BUNDLE_FORMAT_VERSION = 4;
export const MANIFEST = 'manifest.json';

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  precision: Precision;
  /** Quantization of the decoder matrices (int4 / int8 only). */
  quantization?: { bits: 4 | 8; blockSize: number; accuracyLevel: number };
  /** Graph name → .onnx file (relative to the bundle). */
  graphs: Partial<Record<GraphName, string>>;
  /** Every other file too: relative path → size and sha256 (hex). */
  files: Record<string, { bytes: number; sha256: string }>;
  createdBy: string;
  /** The directory the bundle was converted from, for the record. */
  source: string;
}

export function isBundle(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST));
}

export function readManifest(dir: string): BundleManifest {
  const file = path.join(dir, MANIFEST);
  return parseManifest(fs.readFileSync(file, 'utf8'), file);
}

/** A manifest's text (from a file or an S3 object named by `source`), checked for the format. */
export function parseManifest(text: string, source: string): BundleManifest {
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(text) as BundleManifest;
  } catch (e) {
    throw new Error(`${source}: not JSON (${(e as Error).message})`);
  }
  if (manifest?.format !== BUNDLE_FORMAT) throw new Error(`${source}: not an ${BUNDLE_FORMAT} manifest`);
  if (manifest.formatVersion !== BUNDLE_FORMAT_VERSION) {
    // the graphs' inputs and outputs are part of the format: an engine cannot run another version's
    throw new Error(`${source}: a bundle of format v${manifest.formatVersion}; this version of anole reads v${BUNDLE_FORMAT_VERSION}: rebuild it with \`anole convert\``);
  }
  return manifest;
}

/** sha256 of a file, streamed (bounded memory for multi-GB weights). */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every listed file exists with its listed size: a cheap check for truncated copies. */
export function checkSizes(dir: string, manifest: BundleManifest): void {
  for (const [name, { bytes }] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new Error(`${file}: missing (listed in ${MANIFEST})`);
    const size = fs.statSync(file).size;
    if (size !== bytes) throw new Error(`${file}: ${size} bytes, ${MANIFEST} says ${bytes}`);
  }
}

/** Sizes and sha256 of every listed file; throws naming the first file that differs. */
export async function verifyBundle(dir: string): Promise<BundleManifest> {
  const manifest = readManifest(dir);
  checkSizes(dir, manifest);
  for (const [name, { sha256 }] of Object.entries(manifest.files)) {
    const actual = await sha256File(path.join(dir, name));
    if (actual !== sha256) throw new Error(`${path.join(dir, name)}: sha256 ${actual}, ${MANIFEST} says ${sha256}`);
  }
  return manifest;
}
