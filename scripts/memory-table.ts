// Prints the memory estimate of Anole-7B's bundles on the GPU instance types of infra/instance-memory.ts, as the
// markdown table of docs/gpu-memory.md: `npx tsx scripts/memory-table.ts`. Shapes only, no weights needed.
import { GPU_INSTANCES, HOST_USABLE_SHARE } from '../infra/instance-memory.ts';
import { parseAnoleConfig } from '../model/config.ts';
import { estimateMemory, gib, largestFittingBatch } from '../sidecar/bundle/memory-estimate.ts';
import { anoleConfigJson, RANDOM_CHECKPOINT_PRESETS } from '../sidecar/weights/random-checkpoint.ts';
import { syntheticTokenizer } from '../sidecar/weights/synthetic-tokenizer.ts';

const shape = { ...RANDOM_CHECKPOINT_PRESETS.small, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 32 };
const config = parseAnoleConfig(anoleConfigJson(shape, syntheticTokenizer({ vocabSize: shape.vocabSize, imageTokens: shape.vq.numEmbeddings }).vocab));
const instances = Object.entries(GPU_INSTANCES);
console.log(`| 7B bundle (--target cuda) | weights | KV cache per job | GPU at batch 1 | host at batch 1 | ${instances.map(([n, m]) => `${n} (${m.gpuGiB} / ${m.hostGiB} GiB)`).join(' | ')} |`);
console.log(`|---|---|---|---|---|${instances.map(() => '---').join('|')}|`);
for (const dtype of ['int4', 'int8', 'fp16', 'bf16'] as const) {
  const p = { dtype, target: 'cuda' as const };
  const e = estimateMemory(config, p, { batch: 1 });
  const batches = instances.map(([, m]) => largestFittingBatch(config, p, { gpuBytes: m.gpuGiB * 2 ** 30, hostBytes: m.hostGiB * HOST_USABLE_SHARE * 2 ** 30 }));
  console.log(`| \`${dtype}\` | ${gib(e.weightsBytes)} | ${gib(e.kvCacheBytes)} | ${gib(e.gpuBytes)} | ${gib(e.hostBytes)} | ${batches.map((b) => (b ? `batch ≤ ${b}` : 'no')).join(' | ')} |`);
}
