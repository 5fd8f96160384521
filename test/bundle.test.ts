import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_FORMAT_VERSION, verifyBundle } from '../sidecar/bundle/manifest.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { TextModel } from '../sidecar/engine/text-model.ts';
import { loadModel } from '../sidecar/worker/load-model.ts';
import { GRAPH_NAMES, type GraphName } from '../sidecar/graphs/model-graphs.ts';
import { STEP_INPUTS } from '../sidecar/graphs/step-decoder.ts';
import { missingCudaKernel } from '../sidecar/onnx/cuda-kernels.ts';
import { predictHostCopies } from '../sidecar/onnx/cuda-placement.ts';
import { DEFAULT_OPSETS } from '../sidecar/onnx/graph-builder.ts';
import { typedNodes } from '../sidecar/onnx/node-types.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { compileConstraints } from '../model/constraints.ts';
import { DEFAULT_SAMPLING } from '../contract/generation-request.ts';
import { logitAgreement } from '../bench/logit-agreement.ts';

const onnxProto = (createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto')).onnx;
const FIXTURE = 'test/fixtures/anole-tiny';
const ids = [[0, 16400, 16500, 16600, 8197, 100, 200, 300, 400, 8196, 16700, 16800]];
let tmp: string;
const bundles: Record<string, string> = {};

async function logitsOf(dir: string): Promise<Float32Array> {
  const model = await TextModel.load(openModel(dir), { intraOpNumThreads: 1 });
  const out = await model.forward({ inputIds: ids });
  await model.release();
  return out.logits;
}

/** The codes of one sampled image (seed 3, default sampling, guided) from a model directory. */
async function imageCodesOf(dir: string): Promise<number[]> {
  const generator = await StepGenerator.load(openModel(dir), { intraOpNumThreads: 1 });
  const request = {
    promptIds: [0, 16400, 16500],
    constraints: compileConstraints(generator.config, 'image'),
    maxNewTokens: generator.config.imageSeqLength + 2,
    text: { ...DEFAULT_SAMPLING.text },
    image: { ...DEFAULT_SAMPLING.image },
    repetitionPenalty: DEFAULT_SAMPLING.repetitionPenalty,
    guidance: { ...DEFAULT_SAMPLING.guidance },
    seed: 3,
  };
  try {
    for await (const e of generator.generate([request], { chunkSize: 8 })) if (e.type === 'image_done') return e.codes;
    throw new Error(`${dir}: no image_done`);
  } finally {
    await generator.release();
  }
}

describe('model bundles (anole convert)', () => {
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-bundle-'));
    for (const [name, dtype, target] of [['fp32', 'fp32', 'cpu'], ['int8', 'int8', 'cpu'], ['int4', 'int4', 'cpu'], ['cuda-int4', 'int4', 'cuda'], ['cuda-fp16', 'fp16', 'cuda']] as const) {
      bundles[name] = path.join(tmp, name);
      await writeBundle({ from: FIXTURE, out: bundles[name], precision: { dtype, target } });
    }
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists every file with its size and sha256, and verification names a corrupted file', async () => {
    const manifest = await verifyBundle(bundles.fp32);
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'tokenizer.json', 'prefill.onnx', 'step.onnx', 'head-full.onnx', 'head-image.onnx', 'vq-encoder.onnx', 'vq-decoder.onnx']));
    // every graph a model runs, and nothing of the deleted Loop engine (its loop-full, loop-image and generator graphs)
    expect(Object.keys(manifest.graphs).sort()).toEqual([...GRAPH_NAMES].sort());
    expect(Object.keys(manifest.files).filter((f) => /^(loop-|generator)/.test(f))).toEqual([]);
    expect(manifest.precision).toEqual({ dtype: 'fp32', target: 'cpu' });
    const copy = path.join(tmp, 'corrupt');
    fs.cpSync(bundles.fp32, copy, { recursive: true });
    const tokenizer = path.join(copy, 'tokenizer.json');
    const bytes = fs.readFileSync(tokenizer);
    bytes[100] ^= 1;
    fs.writeFileSync(tokenizer, bytes);
    await expect(verifyBundle(copy)).rejects.toThrow(/tokenizer\.json: sha256 [0-9a-f]{64}, manifest\.json says/);
    fs.truncateSync(path.join(copy, 'model.safetensors'), 1000);
    expect(() => openModel(copy)).toThrow(/model\.safetensors: 1000 bytes, manifest\.json says \d+/);
  });

  it("a bundle of the Loop engine's format (v3, with its generator graph) is refused with what to do, before any of its graphs run", async () => {
    expect(BUNDLE_FORMAT_VERSION).toBeGreaterThan(3);
    const copy = path.join(tmp, 'older');
    fs.cpSync(bundles.fp32, copy, { recursive: true });
    fs.writeFileSync(path.join(copy, 'generator.onnx'), 'a v3 graph');
    const file = path.join(copy, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
    const older = { ...manifest, formatVersion: 3, graphs: { ...manifest.graphs, generator: 'generator.onnx' }, files: { ...manifest.files, 'generator.onnx': { bytes: 10, sha256: '0'.repeat(64) } } };
    fs.writeFileSync(file, JSON.stringify(older));
    expect(() => openModel(copy)).toThrow(new RegExp(`${file}: a bundle of format v3; this version of anole reads v${BUNDLE_FORMAT_VERSION}: rebuild it with \`anole convert\``));
    await expect(loadModel(copy, { thread: false, intraOpNumThreads: 1 })).rejects.toThrow(/format v3; .*rebuild it with `anole convert`/);
  });

  it('an fp32 bundle gives exactly the logits of the Hugging Face directory', async () => {
    const [hf, bundle] = [await logitsOf(FIXTURE), await logitsOf(bundles.fp32)];
    expect(bundle.length).toBe(hf.length);
    let max = 0;
    for (let i = 0; i < hf.length; i++) max = Math.max(max, Math.abs(hf[i] - bundle[i]));
    expect(max).toBe(0);
  });

  it('int8 and int4 bundles stay close to fp32 (int8 closer), with the decoder matrices packed', async () => {
    const V = 65536;
    const reference = await logitsOf(FIXTURE);
    const int8 = logitAgreement(reference, await logitsOf(bundles.int8), V);
    const int4 = logitAgreement(reference, await logitsOf(bundles.int4), V);
    expect(int8.kl).toBeLessThan(int4.kl);
    expect(int8.kl).toBeLessThan(0.01);
    expect(int4.kl).toBeLessThan(0.2);
    expect(int8.top1).toBeGreaterThanOrEqual(0.9);
    const tensors = openCheckpoint(bundles.int4).tensors;
    expect(tensors.get('model.layers.0.mlp.up_proj.weight.packed')?.dtype).toBe('U8');
    expect(tensors.has('model.layers.0.mlp.up_proj.weight')).toBe(false);
    expect(tensors.get('model.embed_tokens.weight')?.dtype).toBe('BF16'); // gathered, not quantized; kept as the checkpoint has it (the graph casts the rows it reads)
    expect(tensors.get('model.vqmodel.quantize.embedding.weight')?.dtype).toBe('F32'); // the VQ-VAE stays float
    const size = (dir: string) => fs.statSync(path.join(dir, 'model.safetensors')).size;
    expect(size(bundles.int4)).toBeLessThan(size(bundles.int8));
    expect(size(bundles.int8)).toBeLessThan(size(bundles.fp32));
  });

  it('the engine and the image codec run from an int4 bundle', async () => {
    const model = openModel(bundles.int4);
    const codec = await ImageCodec.load(model, { intraOpNumThreads: 1 });
    const codes = await imageCodesOf(bundles.int4);
    expect(codes.length).toBe(16);
    const pixels = await codec.decode([codes]);
    expect(pixels.length).toBe(3 * 64 * 64);
    await codec.release();
  });

  it("stores lm_head's image-token rows on their own, so the heads fold no weight at load and the engine samples the HF directory's image", async () => {
    for (const [name, stored] of [['fp32', 'lm_head.weight.rows_4_8196.t'], ['int4', 'lm_head.weight.rows_4_8196.packed']]) {
      const tensors = openCheckpoint(bundles[name]).tensors;
      expect(tensors.has(stored), `${name}: ${stored}`).toBe(true);
      // a node that reads a weight and nothing but constants is folded by ONNX Runtime at every load
      for (const head of ['head-full', 'head-image'] as const) {
        const model = onnxProto.ModelProto.decode(openModel(bundles[name]).graph(head)!.bytes);
        const constants = new Set(model.graph!.initializer!.map((t) => t.name!));
        const folded: string[] = [];
        const walk = (graph: typeof model.graph) => {
          for (const node of graph!.node!) {
            const inputs = node.input!.filter(Boolean);
            if (inputs.length > 0 && inputs.every((i) => constants.has(i)) && inputs.some((i) => tensors.has(i))) folded.push(`${node.opType}(${inputs})`);
            for (const attr of node.attribute ?? []) if (attr.g) walk(attr.g);
          }
        };
        walk(model.graph);
        expect(folded, `${name}/${head}`).toEqual([]);
      }
    }
    expect(await imageCodesOf(bundles.fp32)).toEqual(await imageCodesOf(FIXTURE));
  });

  it('loadModel loads a bundle in process and on the engine thread', async () => {
    for (const thread of [false, true]) {
      const model = await loadModel(bundles.int4, { thread, intraOpNumThreads: 1 });
      expect(model.generator.config.vocabSize).toBe(65536);
      expect(await model.decodeText([16400])).toBeTypeOf('string');
      await Promise.all([model.generator.release(), model.codec.release()]);
    }
  });

  it('a CUDA fp16 bundle gives the fp32 logits to fp16 precision (run here on CPU, which has fp16 kernels for its ops)', async () => {
    const [fp32, fp16] = [await logitsOf(FIXTURE), await logitsOf(bundles['cuda-fp16'])];
    let max = 0;
    for (let i = 0; i < fp32.length; i++) max = Math.max(max, Math.abs(fp32[i] - fp16[i]));
    expect(max).toBeGreaterThan(0); // it really ran in fp16
    expect(max).toBeLessThan(0.02);
    expect(logitAgreement(fp32, fp16, 65536).top1).toBe(1);
  });

  it('engine v2 runs an fp16 KV cache and fp16 steps (CUDA fp16 bundle, on CPU)', async () => {
    const generator = await StepGenerator.load(openModel(bundles['cuda-fp16']), { intraOpNumThreads: 1 });
    const reference = await StepGenerator.load(openModel(FIXTURE), { intraOpNumThreads: 1 });
    const request = {
      promptIds: [0, 16400, 16500, 16600],
      constraints: compileConstraints(generator.config, 'text'),
      maxNewTokens: 12,
      text: { ...DEFAULT_SAMPLING.text, greedy: true },
      image: { ...DEFAULT_SAMPLING.image },
      repetitionPenalty: 1,
      guidance: { text: 1, image: 1 },
      seed: 0,
    };
    const tokens = async (g: StepGenerator) => {
      for await (const e of g.generate([request, { ...request, promptIds: [0, 16700] }], { chunkSize: 4 })) if (e.type === 'done' && e.sequence === 0) return e.tokens;
    };
    // greedy on a random model: fp16 rounding may flip a near-tie late, so compare the first steps
    expect((await tokens(generator))!.slice(0, 4)).toEqual((await tokens(reference))!.slice(0, 4));
    await generator.release();
    await reference.release();
  });

  it('CUDA bundles (fp16, int4) have a CUDA kernel for every node and no host copy in their decode runs', () => {
    for (const name of ['cuda-fp16', 'cuda-int4']) {
      const model = openModel(bundles[name]);
      for (const graph of Object.keys(model.bundle!.graphs) as GraphName[]) {
        const missing = typedNodes(model.graph(graph)!).map((n) => missingCudaKernel(n, DEFAULT_OPSETS)).filter(Boolean);
        expect(missing, `${name}/${graph}`).toEqual([]);
      }
      // and the decode runs would copy nothing between host and device (CUDA graphs: test/cuda-graph-capture.test.ts)
      for (const graph of ['step', 'head-full', 'head-image'] as const) expect(predictHostCopies(model.graph(graph)!, [STEP_INPUTS.totalSequenceLength]), `${name}/${graph}`).toEqual([]);
    }
    const nbits = typedNodes(openModel(bundles['cuda-int4']).graph('step')!).filter((n) => n.opType === 'MatMulNBits');
    expect(nbits.length).toBeGreaterThan(0);
    expect(nbits.every((n) => n.inputTypes.join() === 'float16,uint8,float16')).toBe(true);
    expect(openCheckpoint(bundles['cuda-fp16']).tensors.get('model.layers.0.mlp.up_proj.weight.t')?.dtype).toBe('F16'); // stored transposed, in the compute type
  });
});
