import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, parseAnoleConfig, parseVQConfig, type AnoleConfig, type VQConfig } from '../../model/config.ts';
import { CheckpointError } from '../../model/checkpoint-error.ts';
import { readSafetensorsHeader, type TensorEntry } from './safetensors.ts';

/**
 * A Hugging Face checkpoint directory laid out like leloy/Anole-7b-v0.1-hf: config.json and
 * either one model.safetensors or shards listed in model.safetensors.index.json. Also accepts a
 * standalone AnoleVQVAE checkpoint (its config.json is the VQ config and its tensor names have
 * no `model.vqmodel.` prefix).
 */
export interface Checkpoint {
  dir: string;
  kind: 'anole' | 'vqvae';
  /** Present for a full Anole checkpoint. */
  config: AnoleConfig | undefined;
  vq: VQConfig;
  /** Prefix of the VQ-VAE tensor names: `model.vqmodel.` in a full checkpoint, `` standalone. */
  vqPrefix: string;
  tensors: Map<string, TensorEntry>;
  /** model.safetensors, or model.safetensors.index.json for a sharded checkpoint: what errors about absent tensors name. */
  weightsFile: string;
  /** A tensor that must exist, with the given shape when one is given; else a CheckpointError. */
  tensor(name: string, shape?: number[]): TensorEntry;
}

export function openCheckpoint(dir: string): Checkpoint {
  const { isVQ, config, vq } = readCheckpointConfig(dir);
  const tensors = readWeights(dir);
  const index = path.join(dir, 'model.safetensors.index.json');
  const weightsFile = fs.existsSync(index) ? index : path.join(dir, 'model.safetensors');
  return {
    dir,
    kind: isVQ ? 'vqvae' : 'anole',
    config,
    vq,
    vqPrefix: isVQ ? '' : 'model.vqmodel.',
    tensors,
    weightsFile,
    tensor(name, shape) {
      const entry = tensors.get(name);
      if (!entry) throw new CheckpointError(weightsFile, `missing tensor ${name}`);
      if (shape && (shape.length !== entry.shape.length || shape.some((d, i) => d !== entry.shape[i]))) {
        throw new CheckpointError(entry.file, `tensor ${name} has shape [${entry.shape}] but the config implies [${shape}]`);
      }
      return entry;
    },
  };
}

/**
 * The configuration in a checkpoint's (or a bundle's) config.json, parsed and checked: a full
 * Anole config, or a standalone VQ-VAE's. Bad or missing files throw the CheckpointError naming it.
 */
export function readCheckpointConfig(dir: string): { isVQ: boolean; config: AnoleConfig | undefined; vq: VQConfig } {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new CheckpointError(configPath, 'missing: a checkpoint directory needs config.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new CheckpointError(configPath, `not valid JSON: ${(e as Error).message}`);
  }
  const isVQ = Array.isArray(raw.architectures) && raw.architectures.includes('AnoleVQVAE');
  try {
    if (isVQ) return { isVQ, config: undefined, vq: parseVQConfig(raw) };
    const config = parseAnoleConfig(raw);
    return { isVQ, config, vq: config.vq };
  } catch (e) {
    if (e instanceof ConfigError) throw new CheckpointError(configPath, e.message);
    throw e;
  }
}

function readWeights(dir: string): Map<string, TensorEntry> {
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(fs.readFileSync(index, 'utf8')).weight_map;
    } catch (e) {
      throw new CheckpointError(index, `not valid JSON: ${(e as Error).message}`);
    }
    if (!weightMap || typeof weightMap !== 'object') throw new CheckpointError(index, 'has no weight_map');
    const tensors = new Map<string, TensorEntry>();
    for (const shard of new Set(Object.values(weightMap))) {
      if (typeof shard !== 'string') throw new CheckpointError(index, `weight_map values must be file names, got ${JSON.stringify(shard)}`);
      const shardPath = path.join(dir, shard);
      if (!fs.existsSync(shardPath)) throw new CheckpointError(shardPath, 'missing shard (listed in model.safetensors.index.json)');
      const header = readSafetensorsHeader(shardPath);
      for (const [name, entry] of header.tensors) tensors.set(name, entry);
    }
    for (const [name, shard] of Object.entries(weightMap)) {
      if (!tensors.has(name)) throw new CheckpointError(path.join(dir, shard), `missing tensor ${name} (listed in model.safetensors.index.json)`);
    }
    return tensors;
  }
  if (fs.existsSync(single)) return readSafetensorsHeader(single).tensors;
  throw new CheckpointError(dir, 'no model.safetensors or model.safetensors.index.json');
}
