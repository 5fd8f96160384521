import fs from 'node:fs/promises';
import { TextModel } from '../../sidecar/engine/text-model.ts';
import { openModel } from '../../sidecar/engine/model-source.ts';
import { withProgress } from '../progress.ts';

/**
 * `forward --input IN.json --output OUT.bin`: IN.json is {input_ids, attention_mask?, position_ids?}
 * (number[][]); OUT.bin gets little-endian float32 logits [B, T, vocab]. Without position_ids,
 * positions follow the attention mask as generate does.
 */
export async function forwardCommand(modelDir: string, opts: { input: string; output: string }): Promise<void> {
  const input = JSON.parse(await fs.readFile(opts.input, 'utf8'));
  const grid = (name: string, required: boolean): number[][] | undefined => {
    const v = input[name];
    if (v === undefined && !required) return undefined;
    if (!Array.isArray(v) || !v.every((row: unknown) => Array.isArray(row) && row.every(Number.isInteger))) {
      throw new Error(`${opts.input}: "${name}" must be an array of arrays of integers`);
    }
    return v;
  };
  const inputIds = grid('input_ids', true)!;
  const source = openModel(modelDir);
  const vocab = source.checkpoint.config!.vocabSize;
  const bad = inputIds.flat().find((id) => id < 0 || id >= vocab);
  if (bad !== undefined) throw new Error(`${opts.input}: token id ${bad} is outside the vocabulary [0, ${vocab})`);
  const model = await withProgress('loading the decoder', () => TextModel.load(source));
  const out = await withProgress('forward', () =>
    model.forward({ inputIds, attentionMask: grid('attention_mask', false), positionIds: grid('position_ids', false) }),
  );
  await fs.writeFile(opts.output, new Uint8Array(out.logits.buffer, out.logits.byteOffset, out.logits.byteLength));
  await model.release();
}
