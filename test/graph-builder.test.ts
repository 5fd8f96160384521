import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { typedNodes } from '../sidecar/onnx/node-types.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';

const onnxProto = (createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto')).onnx;
const FIXTURE = 'test/fixtures/anole-tiny/model.safetensors';

describe('GraphBuilder', () => {
  it('feeds bf16 and fp32 safetensors weights to ONNX Runtime by file offset', async () => {
    const { tensors } = readSafetensorsHeader(FIXTURE);
    const embed = tensors.get('model.embed_tokens.weight')!;
    const codebook = tensors.get('model.vqmodel.quantize.embedding.weight')!;
    expect(embed.dtype).toBe('BF16');
    expect(codebook.dtype).toBe('F32');

    const g = new GraphBuilder('lookup');
    const ids = g.input('ids', DataType.INT64, [3]);
    g.op('Gather', [g.weight(embed), ids], { axis: 0 }, { output: 'text_rows' });
    g.op('Gather', [g.weight(codebook), ids], { axis: 0 }, { output: 'code_rows' });
    g.output('text_rows', DataType.FLOAT, [3, embed.shape[1]]);
    g.output('code_rows', DataType.FLOAT, [3, codebook.shape[1]]);
    const session = await createSession(g.build());

    const picked = [0, 7, 8191];
    const out = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(picked.map(BigInt)), [3]) });
    const embedAll = readTensorAsFloat32(embed);
    const codesAll = readTensorAsFloat32(codebook);
    const [, h] = embed.shape;
    const [, e] = codebook.shape;
    picked.forEach((row, i) => {
      expect(Array.from((out.text_rows.data as Float32Array).subarray(i * h, (i + 1) * h))).toEqual(Array.from(embedAll.subarray(row * h, (row + 1) * h)));
      expect(Array.from((out.code_rows.data as Float32Array).subarray(i * e, (i + 1) * e))).toEqual(Array.from(codesAll.subarray(row * e, (row + 1) * e)));
    });
  });

  it('gathers rows of a bf16 table before casting them: no Cast of the whole table for ONNX Runtime to fold at load', async () => {
    const { tensors } = readSafetensorsHeader(FIXTURE);
    const embed = tensors.get('model.embed_tokens.weight')!;
    const picked = [0, 7, 8191];
    const embedAll = readTensorAsFloat32(embed);
    const [, h] = embed.shape;
    for (const floatType of [DataType.FLOAT, DataType.FLOAT16]) {
      const g = new GraphBuilder('lookup');
      g.floatType = floatType;
      const ids = g.input('ids', DataType.INT64, [3]);
      g.op('Cast', [g.gatherWeightRows(embed, ids)], { to: DataType.FLOAT }, { output: 'rows' });
      g.output('rows', DataType.FLOAT, [3, h]);
      const built = g.build();
      expect(typedNodes(built).find((n) => n.opType === 'Gather')?.inputTypes[0]).toBe('bfloat16');
      const casts = onnxProto.ModelProto.decode(built.bytes).graph!.node!.filter((n) => n.opType === 'Cast');
      expect(casts.flatMap((n) => n.input)).not.toContain(embed.name);
      const session = await createSession(built);
      const out = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(picked.map(BigInt)), [3]) });
      // bf16 → float32 is exact, and so is bf16 → fp16 → float32 for these small weights
      picked.forEach((row, i) => expect(Array.from((out.rows.data as Float32Array).subarray(i * h, (i + 1) * h))).toEqual(Array.from(embedAll.subarray(row * h, (row + 1) * h))));
      await session.release();
    }
  });
});
