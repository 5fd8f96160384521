import type { GraphBuilder } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';

/**
 * The VQ-VAE's building blocks (docs/model.md §5.1, HF ChameleonVQVAE*), each emitted as plain
 * ONNX ops on NCHW float32 tensors. Tensor names follow the checkpoint: `name` is the module
 * path without the VQ prefix, e.g. `encoder.down.2.block.0`.
 */

/** GroupNorm in HF's VQ-VAE: 32 groups, eps 1e-6, per-channel affine. */
const GROUPS = 32;
const GROUP_NORM_EPS = 1e-6;

/** Graph plus shape-checked access to the VQ tensors of one checkpoint. */
export interface VQGraph {
  g: GraphBuilder;
  /** float32 value of `<vqPrefix><name>`; a missing or wrong-shaped tensor throws CheckpointError. */
  param(name: string, shape: number[]): string;
}

export function vqGraph(g: GraphBuilder, ckpt: Checkpoint): VQGraph {
  return {
    g,
    param: (name, shape) => g.weight(ckpt.tensor(ckpt.vqPrefix + name, shape)),
  };
}

export interface ConvOptions {
  stride?: number;
  /** ONNX order [top, left, bottom, right]; default "same" padding (k-1)/2 on every side. */
  pads?: [number, number, number, number];
  output?: string;
}

/** Conv2d with bias: x [B,cin,H,W] → [B,cout,H',W']; weight `<name>.weight` [cout,cin,k,k]. */
export function conv(v: VQGraph, x: string, name: string, cin: number, cout: number, k: number, opts: ConvOptions = {}): string {
  const p = (k - 1) / 2;
  const weight = v.param(`${name}.weight`, [cout, cin, k, k]);
  const bias = v.param(`${name}.bias`, [cout]);
  const stride = opts.stride ?? 1;
  return v.g.op(
    'Conv',
    [x, weight, bias],
    { kernel_shape: [k, k], strides: [stride, stride], pads: opts.pads ?? [p, p, p, p] },
    opts.output ? { output: opts.output } : {},
  );
}

/**
 * GroupNorm(32, c): statistics per (batch, group) over c/32 channels × H × W, then a per-channel
 * affine. The statistics are taken in two stages, over each row of W values and then over the
 * row means: ONNX Runtime's InstanceNormalization sums a 512×512 group in one float32 pass, and
 * its mean error (divided by a small σ) left fixture B's latent 1.5e-3 off HF's; two stages
 * bring that to 1e-5, as PyTorch's cascaded sums do. Opset-21 GroupNormalization is avoided:
 * its scale/bias semantics changed between opsets.
 */
export function groupNorm(v: VQGraph, x: string, name: string, c: number): string {
  const { g } = v;
  const rows = g.op('Reshape', [x, g.int64s([0, GROUPS, -1, 0])]); // [B,32,c/32·H,W]
  const mean = (t: string) => g.op('ReduceMean', [g.op('ReduceMean', [t, g.int64s([3])], { keepdims: 1 }), g.int64s([2])], { keepdims: 1 }); // [B,32,1,1]
  const centered = g.op('Sub', [rows, mean(rows)]);
  const variance = mean(g.op('Mul', [centered, centered])); // biased, as torch
  const invStd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.float(GROUP_NORM_EPS)])])]); // [B,32,1,1]
  // γ folds into the per-group 1/σ (one pass over the activation fewer): scale [B,c,1,1].
  const gamma = g.op('Reshape', [v.param(`${name}.weight`, [c]), g.int64s([GROUPS, c / GROUPS])]); // [32,c/32]
  const scale = g.op('Reshape', [g.op('Mul', [g.op('Reshape', [invStd, g.int64s([0, GROUPS, 1])]), gamma]), g.int64s([0, c, 1, 1])]);
  const beta = g.op('Reshape', [v.param(`${name}.bias`, [c]), g.int64s([c, 1, 1])]);
  const normed = g.op('Mul', [g.op('Reshape', [centered, g.op('Shape', [x])]), scale]); // [B,c,H,W]
  return g.op('Add', [normed, beta]);
}

/** swish(x) = x·sigmoid(x) (HF: `h *= torch.sigmoid(h)`). */
export function swish(v: VQGraph, x: string): string {
  return v.g.op('Mul', [x, v.g.op('Sigmoid', [x])]);
}

/**
 * ResnetBlock(cin→cout): h = conv1(swish(norm1(x))); h = conv2(swish(norm2(h))) (dropout is off
 * at inference); the shortcut is a 1×1 `nin_shortcut` only when cin ≠ cout.
 */
export function resBlock(v: VQGraph, x: string, name: string, cin: number, cout: number): string {
  let h = conv(v, swish(v, groupNorm(v, x, `${name}.norm1`, cin)), `${name}.conv1`, cin, cout, 3);
  h = conv(v, swish(v, groupNorm(v, h, `${name}.norm2`, cout)), `${name}.conv2`, cout, cout, 3);
  const shortcut = cin === cout ? x : conv(v, x, `${name}.nin_shortcut`, cin, cout, 1);
  return v.g.op('Add', [shortcut, h]);
}

/**
 * AttnBlock(c): single-head self-attention over the H·W positions of GN(x), q/k/v/proj_out as 1×1
 * convs, scores scaled by c^-0.5; x + proj_out(attention).
 */
export function attnBlock(v: VQGraph, x: string, name: string, c: number): string {
  const { g } = v;
  const n = groupNorm(v, x, `${name}.norm`, c);
  const flat = (t: string) => g.op('Reshape', [t, g.int64s([0, c, -1])]); // [B,c,N]
  const q = g.op('Transpose', [flat(conv(v, n, `${name}.q`, c, c, 1))], { perm: [0, 2, 1] }); // [B,N,c]
  const k = flat(conv(v, n, `${name}.k`, c, c, 1)); // [B,c,N]
  const val = flat(conv(v, n, `${name}.v`, c, c, 1)); // [B,c,N]
  // HF multiplies by the Python float int(c)**-0.5, which PyTorch rounds to float32.
  const scores = g.op('Mul', [g.op('MatMul', [q, k]), g.float(Math.fround(c ** -0.5))]); // [B,N(query),N(key)]
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const attended = g.op('MatMul', [val, g.op('Transpose', [probs], { perm: [0, 2, 1] })]); // [B,c,N(query)]
  const o = g.op('Reshape', [attended, g.op('Shape', [x])]); // [B,c,H,W]
  return g.op('Add', [x, conv(v, o, `${name}.proj_out`, c, c, 1)]);
}

/** Downsample(c): zero-pad right and bottom by 1, then 3×3 stride-2 conv without padding (H → H/2). */
export function downsample(v: VQGraph, x: string, name: string, c: number): string {
  // ONNX Conv pads are [top, left, bottom, right], so the asymmetric F.pad(0,1,0,1) folds into the conv.
  return conv(v, x, `${name}.conv`, c, c, 3, { stride: 2, pads: [0, 0, 1, 1] });
}

/** Upsample(c): nearest ×2 (PyTorch's F.interpolate "nearest" = asymmetric/floor), then 3×3 conv. */
export function upsample(v: VQGraph, x: string, name: string, c: number): string {
  const { g } = v;
  const up = g.op('Resize', [x, '', g.floats('upsample_scales', [4], [1, 1, 2, 2])], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
  return conv(v, up, `${name}.conv`, c, c, 3);
}
