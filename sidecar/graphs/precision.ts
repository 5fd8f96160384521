import { DataType, type DataTypeId, type GraphBuilder } from '../onnx/graph-builder.ts';

/**
 * What a model is built for: the execution provider it will run on and the dtype its decoder
 * weights are stored in. The activations follow from both (docs/engine.md §2): ONNX
 * Runtime's CPU kernels are float32 (weights of any dtype are cast up, or dequantized inside
 * MatMulNBits), while on CUDA half-size weights only pay off when the activations are half too.
 */
export const WEIGHT_DTYPES = ['fp32', 'fp16', 'bf16', 'int8', 'int4'] as const;
export type WeightDtype = (typeof WEIGHT_DTYPES)[number];
export const TARGETS = ['cpu', 'cuda'] as const;
export type Target = (typeof TARGETS)[number];

export interface Precision {
  dtype: WeightDtype;
  target: Target;
  /**
   * What an int8 / int4 CUDA build computes in: fp16 (the default) or bf16, the type Anole was trained
   * in, for when fp16 activations overflow (unmeasured: docs/engine-v2.md, "Next"). fp16 / bf16 weights
   * compute in their own type; the CPU computes in float32.
   */
  activations?: 'fp16' | 'bf16';
}

export const ACTIVATION_TYPES = ['fp16', 'bf16'] as const;

export const DEFAULT_PRECISION: Precision = { dtype: 'fp32', target: 'cpu' };

/** The decoder's activation type: float32 on CPU and for fp32 weights; on CUDA bf16 for bf16 weights or when asked, else fp16. */
export function activationType(p: Precision): DataTypeId {
  if (p.target === 'cpu' || p.dtype === 'fp32') return DataType.FLOAT;
  return p.dtype === 'bf16' || p.activations === 'bf16' ? DataType.BFLOAT16 : DataType.FLOAT16;
}

/** Refuses activations where they mean nothing (a CPU build, or float weights that compute in their own type). */
export function checkActivations(p: Precision, where: string): void {
  if (p.activations === undefined) return;
  if (!ACTIVATION_TYPES.includes(p.activations)) throw new Error(`${where}: --activations must be fp16 or bf16, got ${p.activations}`);
  if (p.target !== 'cuda' || (p.dtype !== 'int8' && p.dtype !== 'int4')) {
    throw new Error(`${where}: --activations applies to --target cuda with --dtype int8 or int4 (fp16 / bf16 weights compute in their own type, the CPU in float32)`);
  }
}

/**
 * Refuses `--target cuda --dtype fp32`: the engine's attention (GroupQueryAttention) has no float32
 * CUDA kernel, so no engine runs it. `where` names what asked for it.
 */
export function refuseCudaFp32(p: Precision, where: string): void {
  if (p.target === 'cuda' && p.dtype === 'fp32') throw new Error(`${where}: --target cuda --dtype fp32 has no engine (GroupQueryAttention has no float32 CUDA kernel); use --dtype fp16 or bf16`);
}

/** Bits per quantized weight, or undefined for a float dtype. */
export function quantizedBits(dtype: WeightDtype): 4 | 8 | undefined {
  return dtype === 'int4' ? 4 : dtype === 'int8' ? 8 : undefined;
}

/**
 * The additive mask's "closed" value in the activation type. float32 and bf16 use their lowest
 * finite value as HF does; fp16 uses half of its lowest (-65504) so that adding a score can never
 * round to -inf, which would turn a fully masked (pad) row into NaN.
 */
export function maskLowest(type: DataTypeId): number {
  if (type === DataType.FLOAT16) return -32752;
  if (type === DataType.BFLOAT16) return -3.3895313892515355e38;
  return -3.4028234663852886e38;
}

/**
 * A float constant in the graph's activation type: a float32 initializer, cast once in the root
 * graph (folded at load) when the graph computes in fp16 / bf16.
 */
export function floatConstant(g: GraphBuilder, hint: string, dims: number[], values: ArrayLike<number>): string {
  const root = g.root();
  const f32 = root.floats(hint, dims, values);
  return root.floatType === DataType.FLOAT ? f32 : root.op('Cast', [f32], { to: root.floatType });
}

/** x (float32) in the graph's activation type. */
export function toActivation(g: GraphBuilder, x: string): string {
  const t = g.root().floatType;
  return t === DataType.FLOAT ? x : g.op('Cast', [x], { to: t });
}
