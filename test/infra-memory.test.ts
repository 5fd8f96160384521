import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../infra/config.ts';
import { DEFAULT_BUNDLE, GPU_INSTANCES, HOST_USABLE_SHARE } from '../infra/instance-memory.ts';
import { DEFAULT_SETTINGS } from '../infra/settings.ts';
import { parseAnoleConfig } from '../model/config.ts';
import { estimateMemory, memoryShortfalls } from '../sidecar/bundle/memory-estimate.ts';
import type { Precision } from '../sidecar/graphs/precision.ts';
import { anoleConfigJson, RANDOM_CHECKPOINT_PRESETS } from '../sidecar/weights/random-checkpoint.ts';
import { syntheticTokenizer } from '../sidecar/weights/synthetic-tokenizer.ts';
import { synthAnole, type Synthesized } from './infra-synth.ts';

// Anole-7B's shapes (leloy/Anole-7b-v0.1-hf: hidden 4096, MLP 11008, 32 layers of 32 heads, vocabulary 65536,
// 4096 positions) with the real VQ-VAE, as the small preset has it.
const shape = { ...RANDOM_CHECKPOINT_PRESETS.small, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 32 };
const anole7b = parseAnoleConfig(anoleConfigJson(shape, syntheticTokenizer({ vocabSize: shape.vocabSize, imageTokens: shape.vq.numEmbeddings }).vocab));

function fits(instance: string, precision: Precision, batch: number): string[] {
  const m = GPU_INSTANCES[instance];
  return memoryShortfalls(estimateMemory(anole7b, precision, { batch }), { gpuBytes: m.gpuGiB * 2 ** 30, hostBytes: m.hostGiB * HOST_USABLE_SHARE * 2 ** 30 });
}

let base: Synthesized;
let keys: Synthesized;
beforeAll(() => {
  base = synthAnole();
  keys = synthAnole({ 'anole:apiAuth': 'api-keys' });
}, 120_000);
afterAll(() => {
  for (const s of [base, keys]) if (s) fs.rmSync(s.outdir, { recursive: true, force: true });
});

const only = <T>(o: Record<string, T>): [string, T] => {
  const entries = Object.entries(o);
  expect(entries).toHaveLength(1);
  return entries[0];
};

describe('the deployment fits what it deploys (cdk synth)', () => {
  it('the default instance type takes the default bundle (7B int4 for CUDA) at the batch the workers are given, within 90% of GPU and host memory', () => {
    const [, task] = only(base.resources('AWS::ECS::TaskDefinition'));
    const worker = task.Properties.ContainerDefinitions.find((c: { Name: string }) => c.Name === 'worker');
    const batch = Number(worker.Environment.find((e: { Name: string }) => e.Name === ENV.batchSize).Value);
    expect(batch).toBe(DEFAULT_SETTINGS.jobsPerTask);
    const [instance] = DEFAULT_SETTINGS.instanceTypes;
    expect(instance).toBe('g6.xlarge');
    expect(fits(instance, DEFAULT_BUNDLE, batch)).toEqual([]);
    // what the README's instance table says: fp16 needs a 48 GB GPU; int4 takes two jobs at once on 24 GB, not three
    expect(fits('g6.xlarge', { dtype: 'fp16', target: 'cuda' }, 1)).toEqual([expect.stringMatching(/of GPU memory/)]);
    expect(fits('g6.xlarge', DEFAULT_BUNDLE, 2)).toEqual([]);
    expect(fits('g6.xlarge', DEFAULT_BUNDLE, 3).length).toBeGreaterThan(0);
    expect(fits('g6.xlarge', { dtype: 'int8', target: 'cuda' }, 1)).toEqual([]);
    expect(fits('g6e.xlarge', { dtype: 'fp16', target: 'cuda' }, 4)).toEqual([]);
    expect(fits('g6e.xlarge', DEFAULT_BUNDLE, 5)).toEqual([]);
  });

  it("the worker's ECS service has no DesiredCount: the queue's scaling owns it", () => {
    const [, service] = only(base.resources('AWS::ECS::Service'));
    expect(service.Properties).not.toHaveProperty('DesiredCount');
    const [, target] = only(base.resources('AWS::ApplicationAutoScaling::ScalableTarget'));
    expect(target.Properties).toMatchObject({ MinCapacity: 0, ScalableDimension: 'ecs:service:DesiredCount' });
  });

  it("the bucket's CORS rule names the API's origin only (the Function URL's), put at deploy time", () => {
    const [bucketId, bucket] = Object.entries(base.resources('AWS::S3::Bucket')).find(([id]) => id.startsWith('StorageData'))!;
    expect(bucket.Properties).not.toHaveProperty('CorsConfiguration');
    const [, cors] = only(base.resources('Custom::AWS'));
    const create = JSON.stringify(cors.Properties.Create);
    expect(create).not.toContain('"*"]'); // no wildcard origin
    const [urlId] = only(base.resources('AWS::Lambda::Url'));
    // {"AllowedOrigins":["https://<host of the Function URL>"]}: the host is the third part of "https://host/"
    expect(create).toContain('\\"AllowedOrigins\\":[\\"https://');
    expect(create).toContain(`{"Fn::Select":[2,{"Fn::Split":["/",{"Fn::GetAtt":["${urlId}","FunctionUrl"]}]}]}`);
    expect(create).toContain(`{"Ref":"${bucketId}"}`);
    expect(create).toContain('\\"AllowedMethods\\":[\\"GET\\",\\"PUT\\",\\"HEAD\\"]');
    expect(JSON.stringify(cors.Properties.Update)).toBe(create.replace(/"Create"/g, '"Update"'));
  });

  it('api-keys mode: the open Function URL runs at most apiConcurrency requests at once (reserved concurrency); iam mode: no limit', () => {
    const api = (s: Synthesized) => Object.entries(s.resources('AWS::Lambda::Function')).find(([id]) => id.startsWith('ApiHandler'))![1];
    expect(api(keys).Properties.ReservedConcurrentExecutions).toBe(DEFAULT_SETTINGS.apiConcurrency);
    expect(api(base).Properties).not.toHaveProperty('ReservedConcurrentExecutions');
  });
});
