import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config.ts';
import { CheckpointError } from '../checkpoint-error.ts';

/**
 * preprocessor_config.json (AnoleImageProcessor) and processor_config.json (AnoleProcessor), with
 * HF's class defaults for every absent field (image_processing_anole.py / processing_anole.py
 * @241464). A checkpoint without these files gets exactly what HF would construct.
 */

/** HF `size`: either the shortest edge (aspect ratio kept) or a fixed height × width. */
export type ResizeTarget = { shortestEdge: number } | { height: number; width: number };

export interface ImageProcessorConfig {
  doConvertRgb: boolean;
  doResize: boolean;
  size: ResizeTarget;
  /** PIL resample id: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING. */
  resample: number;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  /** The literal from the file: 0.0078 for Anole, not 2/255 (pixel values land in [-1, 0.989]). */
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

export interface ProcessorConfig {
  /** `<image>` tokens per image (1024 on the real 32×32 latent grid). */
  imageSeqLength: number;
  imageToken: string;
}

type Json = Record<string, unknown>;

const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function bool(raw: Json, name: string, fallback: boolean): boolean {
  const v = raw[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(`${name} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function number(raw: Json, name: string, fallback: number, check: (v: unknown) => boolean, what: string): number {
  const v = raw[name];
  if (v === undefined || v === null) return fallback;
  if (!check(v)) throw new ConfigError(`${name} must be ${what}, got ${JSON.stringify(v)}`);
  return v as number;
}

/** HF accepts one number for all channels or one per channel. */
function perChannel(raw: Json, name: string, fallback: number, nonZero: boolean): [number, number, number] {
  const v = raw[name];
  if (v === undefined || v === null) return [fallback, fallback, fallback];
  const list = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(list) || list.length !== 3 || !list.every(isNum) || (nonZero && list.some((x) => x === 0))) {
    throw new ConfigError(`${name} must be a number or 3 numbers${nonZero ? ' (non-zero)' : ''}, got ${JSON.stringify(v)}`);
  }
  return [list[0], list[1], list[2]];
}

/** HF `get_size_dict`: an int means a square; dicts are {shortest_edge} or {height, width}. */
function sizeDict(raw: Json, name: string, fallback: ResizeTarget, allowShortestEdge: boolean): ResizeTarget {
  const v = raw[name];
  if (v === undefined || v === null) return fallback;
  if (isPosInt(v)) return allowShortestEdge ? { shortestEdge: v } : { height: v, width: v };
  const d = v as Json;
  if (typeof d === 'object' && allowShortestEdge && isPosInt(d.shortest_edge)) return { shortestEdge: d.shortest_edge };
  if (typeof d === 'object' && isPosInt(d.height) && isPosInt(d.width)) return { height: d.height, width: d.width };
  const forms = allowShortestEdge ? '{shortest_edge} or {height, width}' : '{height, width}';
  throw new ConfigError(`${name} must be ${forms} with positive integers, got ${JSON.stringify(v)}`);
}

export function parseImageProcessorConfig(raw: Json): ImageProcessorConfig {
  const resample = number(raw, 'resample', 1, (v) => [0, 1, 2, 3, 4, 5].includes(v as number), 'a PIL resample id 0..5');
  const cropSize = sizeDict(raw, 'crop_size', { height: 512, width: 512 }, false) as { height: number; width: number };
  return {
    doConvertRgb: bool(raw, 'do_convert_rgb', true),
    doResize: bool(raw, 'do_resize', true),
    size: sizeDict(raw, 'size', { shortestEdge: 512 }, true),
    resample,
    doCenterCrop: bool(raw, 'do_center_crop', true),
    cropSize,
    doRescale: bool(raw, 'do_rescale', true),
    rescaleFactor: number(raw, 'rescale_factor', 0.0078, (v) => isNum(v) && v > 0, 'a positive number'),
    doNormalize: bool(raw, 'do_normalize', true),
    imageMean: perChannel(raw, 'image_mean', 1.0, false),
    imageStd: perChannel(raw, 'image_std', 1.0, true),
  };
}

export function parseProcessorConfig(raw: Json): ProcessorConfig {
  const imageToken = raw.image_token ?? '<image>';
  if (typeof imageToken !== 'string' || imageToken.length === 0) {
    throw new ConfigError(`image_token must be a non-empty string, got ${JSON.stringify(imageToken)}`);
  }
  return {
    imageSeqLength: number(raw, 'image_seq_length', 1024, isPosInt, 'a positive integer'),
    imageToken,
  };
}

/** Reads `<dir>/<name>` if present ({} otherwise), naming the file in any error. */
function readOptionalJson<T>(dir: string, name: string, parse: (raw: Json) => T): T {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) return parse({});
  let raw: Json;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(file, `not valid JSON: ${(e as Error).message}`);
  }
  try {
    return parse(raw);
  } catch (e) {
    if (e instanceof ConfigError) throw new CheckpointError(file, e.message);
    throw e;
  }
}

export function loadImageProcessorConfig(dir: string): ImageProcessorConfig {
  return readOptionalJson(dir, 'preprocessor_config.json', parseImageProcessorConfig);
}

export function loadProcessorConfig(dir: string): ProcessorConfig {
  return readOptionalJson(dir, 'processor_config.json', parseProcessorConfig);
}
