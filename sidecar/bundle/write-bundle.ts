import fs from 'node:fs';
import path from 'node:path';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { decoderWeights } from '../graphs/decoder.ts';
import { imageTokenRange } from '../graphs/head-inputs.ts';
import { buildModelGraphs } from '../graphs/model-graphs.ts';
import { activationType, checkActivations, quantizedBits, refuseCudaFp32, type Precision } from '../graphs/precision.ts';
import { DataType } from '../onnx/graph-builder.ts';
import { openCheckpoint } from '../weights/checkpoint.ts';
import { blobBytes, blocksPerRow, blockScales, quantizeNBits } from '../weights/quantize-nbits.ts';
import { packedName, rowsName, scalesName, transposedName } from '../weights/quantized-tensors.ts';
import { decodeToFloat32, readTensorAsFloat32, type TensorEntry } from '../weights/safetensors.ts';
import { encodeFloats, writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.ts';
import { validateCheckpoint } from '../weights/validate-checkpoint.ts';
import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, MANIFEST, sha256File, type BundleManifest } from './manifest.ts';

/** The Hugging Face files besides the weights that a bundle carries over (when present). */
const CARRIED_FILES = [
  'config.json', 'generation_config.json', 'preprocessor_config.json', 'processor_config.json',
  'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'chat_template.json',
];
export const BUNDLE_WEIGHTS = 'model.safetensors';

export interface ConvertOptions {
  /** A Hugging Face Anole checkpoint directory. */
  from: string;
  /** The bundle directory to create (must not exist or be empty). */
  out: string;
  precision: Precision;
  /** Quantization block size along K (int4 / int8); default 32. */
  blockSize?: number;
  /**
   * MatMulNBits accuracy_level. Default 4 on CPU (int8 activations): ONNX Runtime's CPU kernel has
   * no fast float path for 8-bit weights (docs/benchmarks.md, "MatMulNBits accuracy level on CPU").
   * 0 on CUDA.
   */
  accuracyLevel?: number;
}

/**
 * `anole convert`: one safetensors file with the decoder in the bundle's dtype (matrices packed
 * for MatMulNBits when int4 / int8; the VQ-VAE as stored), the graphs built once from it as .onnx
 * files that point at it, the tokenizer and config files, and manifest.json with every file's
 * sha256. Written beside `out` and renamed at the end, so a crash never leaves a half bundle.
 */
export async function writeBundle(opts: ConvertOptions): Promise<BundleManifest> {
  refuseCudaFp32(opts.precision, 'anole convert');
  checkActivations(opts.precision, 'anole convert');
  const out = path.resolve(opts.out);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) throw new Error(`${out} is not empty; refusing to overwrite it`);
  const source = openCheckpoint(opts.from);
  validateCheckpoint(source);
  if (source.kind !== 'anole') throw new Error(`${opts.from} is a VQ-VAE checkpoint; a bundle needs the full model`);
  const bits = quantizedBits(opts.precision.dtype);
  const blockSize = opts.blockSize ?? 32;
  const accuracyLevel = opts.accuracyLevel ?? (opts.precision.target === 'cpu' ? 4 : 0);

  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = fs.mkdtempSync(`${out}.partial-`);
  fs.chmodSync(tmp, 0o755);
  try {
    writeSafetensors(path.join(tmp, BUNDLE_WEIGHTS), bundleTensors(source, opts.precision, bits, blockSize), { format: 'pt', anole_precision: JSON.stringify(opts.precision) });
    for (const name of CARRIED_FILES) {
      if (fs.existsSync(path.join(opts.from, name))) fs.copyFileSync(path.join(opts.from, name), path.join(tmp, name));
    }
    // the graphs read the bundle's own weights (their external data names the file beside them)
    const graphs = buildModelGraphs(openCheckpoint(tmp), opts.precision, { accuracyLevel });
    const graphFiles: BundleManifest['graphs'] = {};
    for (const [name, built] of Object.entries(graphs)) {
      fs.writeFileSync(path.join(tmp, `${name}.onnx`), built.bytes);
      graphFiles[name as keyof typeof graphs] = `${name}.onnx`;
    }
    const files: BundleManifest['files'] = {};
    for (const name of fs.readdirSync(tmp).sort()) {
      files[name] = { bytes: fs.statSync(path.join(tmp, name)).size, sha256: await sha256File(path.join(tmp, name)) };
    }
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      formatVersion: BUNDLE_FORMAT_VERSION,
      precision: opts.precision,
      ...(bits ? { quantization: { bits, blockSize, accuracyLevel } } : {}),
      graphs: graphFiles,
      files,
      createdBy: 'anole convert',
      source: path.resolve(opts.from),
    };
    fs.writeFileSync(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    if (fs.existsSync(out)) fs.rmdirSync(out);
    fs.renameSync(tmp, out);
    return manifest;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Every tensor of the bundle, each produced only when the writer reaches it. Decoder matrices are
 * stored transposed or packed (quantized-tensors.ts); text-decoder floats are stored in the type
 * the graph computes in (float32 on CPU, fp16 / bf16 on a GPU) so ONNX Runtime casts nothing at
 * load, except that a CPU bundle asked to be fp16 / bf16 keeps that dtype (half the disk, slower
 * to load); the VQ-VAE and the embedding keep their dtype (the graphs cast the embedding's rows
 * after the Gather, so a bf16 table costs half the read and nothing at load).
 */
function bundleTensors(ckpt: ReturnType<typeof openCheckpoint>, precision: Precision, bits: 4 | 8 | undefined, blockSize: number): TensorToWrite[] {
  const w = decoderWeights(ckpt);
  const act = activationType(precision);
  const actDtype = act === DataType.FLOAT16 ? 'F16' : act === DataType.BFLOAT16 ? 'BF16' : 'F32';
  const floatDtype = (stored: TensorEntry['dtype']): TensorToWrite['dtype'] => {
    if (precision.target === 'cuda') return actDtype;
    if (precision.dtype === 'fp16') return 'F16';
    if (precision.dtype === 'bf16') return 'BF16';
    return 'F32';
  };
  // scales are MatMulNBits input 2, in the activation type; codes are chosen for the rounded scales
  const scaleDtype = actDtype;
  const roundScales = (s: Float32Array) => (scaleDtype === 'F32' ? s : decodeToFloat32(encodeFloats(scaleDtype, s), scaleDtype));
  // the tied head is the embedding, which a Gather reads: it stays float
  const matrices = new Set([...w.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]), ...(w.lmHead !== w.embed ? [w.lmHead] : [])].map((m) => m.name));

  /** A decoder matrix [rows, cols] in the bundle's form: transposed floats, or packed with its scales. */
  const matrix = (name: string, dtype: TensorEntry['dtype'], [rows, cols]: number[], read: () => Float32Array): TensorToWrite[] => {
    if (!bits) return [{ name: transposedName(name), dtype: floatDtype(dtype), shape: [cols, rows], data: () => transpose(read(), rows, cols) }];
    const kBlocks = blocksPerRow(cols, blockSize);
    return [
      { name: packedName(name), dtype: 'U8', shape: [rows, kBlocks, blobBytes(bits, blockSize)], data: () => quantizeNBits(read(), rows, cols, bits, blockSize, roundScales).packed },
      { name: scalesName(name), dtype: scaleDtype, shape: [rows, kBlocks], data: () => blockScales(read(), rows, cols, bits, blockSize, roundScales) },
    ];
  };

  const tensors: TensorToWrite[] = [];
  const keepsDtype = (name: string) => (ckpt.vqPrefix && name.startsWith(ckpt.vqPrefix)) || (name === w.embed.name && w.lmHead !== w.embed);
  for (const [name, entry] of ckpt.tensors) {
    if (keepsDtype(name)) {
      tensors.push({ name, dtype: entry.dtype as TensorToWrite['dtype'], shape: entry.shape, data: () => readTensorAsFloat32(entry) });
    } else if (matrices.has(name)) {
      tensors.push(...matrix(name, entry.dtype, entry.shape, () => readTensorAsFloat32(entry)));
    } else {
      tensors.push({ name, dtype: floatDtype(entry.dtype), shape: entry.shape, data: () => readTensorAsFloat32(entry) });
    }
  }
  // lm_head's image-token rows once more, on their own: the image loop reads only those, and from
  // the whole matrix ONNX Runtime would fold a Slice of it at every load (0.36 s of the small fp32
  // bundle's 1.45 s session; on 7B, 8192 of 65536 rows: 1/8 more head on disk)
  const imageRows = imageTokenRange(imageVocabulary(w.config).codeToToken);
  if (imageRows) {
    const [start, end] = imageRows;
    const head = w.lmHead as TensorEntry; // a checkpoint's: the HF tensor
    const C = w.config.hiddenSize;
    const read = () => readTensorAsFloat32(head).subarray(start * C, end * C);
    const name = rowsName(head.name, imageRows);
    if (matrices.has(head.name)) tensors.push(...matrix(name, head.dtype, [end - start, C], read));
    else tensors.push({ name, dtype: floatDtype(head.dtype), shape: [end - start, C], data: read });
  }
  return tensors;
}

/** [rows, cols] → [cols, rows] */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}
