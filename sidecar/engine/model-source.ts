import fs from 'node:fs';
import path from 'node:path';
import { checkSizes, isBundle, readManifest, type BundleManifest } from '../bundle/manifest.ts';
import { buildModelGraph, type GraphName } from '../graphs/model-graphs.ts';
import { DEFAULT_PRECISION, type Precision } from '../graphs/precision.ts';
import type { BuiltModel } from '../onnx/graph-builder.ts';
import { openCheckpoint, type Checkpoint } from '../weights/checkpoint.ts';
import { validateCheckpoint } from '../weights/validate-checkpoint.ts';

/**
 * Where a model's graphs come from: built on demand from a Hugging Face checkpoint, or read from a
 * bundle that `anole convert` built once (sidecar/bundle). Engines ask for graphs by name and
 * never care which.
 */
export interface ModelSource {
  dir: string;
  /** The config, VQ config and tensor index (of the bundle's own weights for a bundle). */
  checkpoint: Checkpoint;
  precision: Precision;
  /** Present for a bundle. */
  bundle?: BundleManifest;
  /** The graph, or undefined when this model has none by that name (e.g. no image head). */
  graph(name: GraphName): BuiltModel | undefined;
}

/** Graphs built from a Hugging Face checkpoint when asked for (a bad tensor throws its CheckpointError then). */
export function checkpointSource(ckpt: Checkpoint, precision: Precision = DEFAULT_PRECISION): ModelSource {
  return { dir: ckpt.dir, checkpoint: ckpt, precision, graph: (name) => buildModelGraph(ckpt, name, precision) };
}

/** A bundle's prebuilt graphs; file sizes are checked against the manifest (hashes: verifyBundle). */
export function bundleSource(dir: string): ModelSource {
  const manifest = readManifest(dir);
  checkSizes(dir, manifest);
  return {
    dir,
    checkpoint: openCheckpoint(dir),
    precision: manifest.precision,
    bundle: manifest,
    graph(name) {
      const file = manifest.graphs[name];
      return file ? { bytes: fs.readFileSync(path.join(dir, file)), externalDir: path.resolve(dir) } : undefined;
    },
  };
}

/** A bundle directory (it has manifest.json) or a Hugging Face checkpoint directory (validated). */
export function openModel(dir: string): ModelSource {
  if (isBundle(dir)) return bundleSource(dir);
  const ckpt = openCheckpoint(dir);
  validateCheckpoint(ckpt);
  return checkpointSource(ckpt);
}

export function asModelSource(model: Checkpoint | ModelSource): ModelSource {
  return 'graph' in model ? model : checkpointSource(model);
}
