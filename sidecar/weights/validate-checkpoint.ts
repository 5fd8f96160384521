import path from 'node:path';
import { imageVocabulary } from '../../model/vocabulary.ts';
import type { Checkpoint } from './checkpoint.ts';
import { CheckpointError } from '../../model/checkpoint-error.ts';
import { anoleTensors, vqTensors } from './expected-tensors.ts';

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

/**
 * Rejects a bad checkpoint in one place, before any graph is built: every tensor the config implies
 * must exist with exactly that shape and a float dtype, no tensor may be left over (a config that
 * says fewer layers or levels than the weights hold), and the vocabulary must name every VQ code.
 * The first problem is thrown as a CheckpointError naming the file to fix.
 */
export function validateCheckpoint(ckpt: Checkpoint): void {
  const configFile = path.join(ckpt.dir, 'config.json');
  const specs = ckpt.kind === 'anole' ? anoleTensors(ckpt.config!) : vqTensors(ckpt.vq, ckpt.vqPrefix);
  // docs/model.md §2.5: GAIR's early fork stores one [head_dim] q/k norm (and un-permuted q/k,
  // which the decoder graph handles); layer 0's q_norm tells which layout every layer must follow.
  const firstNorm = ckpt.tensors.get('model.layers.0.self_attn.q_norm.weight');
  if (ckpt.kind === 'anole' && firstNorm?.shape.length === 1) {
    for (const spec of specs) if (/\.[qk]_norm\.(weight|bias)$/.test(spec.name)) spec.shape = [ckpt.config!.headDim];
  }

  for (const spec of specs) {
    const entry = ckpt.tensors.get(spec.name);
    if (!entry) {
      throw new CheckpointError(ckpt.weightsFile, `missing tensor ${spec.name} [${spec.shape}], which ${path.basename(configFile)} implies`);
    }
    if (!FLOAT_DTYPES.has(entry.dtype)) {
      throw new CheckpointError(entry.file, `tensor ${spec.name} has dtype ${entry.dtype}; weights must be F32, F16 or BF16`);
    }
    ckpt.tensor(spec.name, spec.shape); // throws on a shape the config does not imply
  }

  const expected = new Set(specs.map((s) => s.name));
  for (const [name, entry] of ckpt.tensors) {
    if (!expected.has(name)) {
      throw new CheckpointError(entry.file, `unexpected tensor ${name}: ${path.basename(configFile)} implies no such parameter (config and weights disagree)`);
    }
  }

  if (ckpt.config && Object.keys(ckpt.config.vocabularyMap).length > 0) {
    try {
      imageVocabulary(ckpt.config);
    } catch (e) {
      throw new CheckpointError(configFile, (e as Error).message);
    }
  }
}
