import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeBindingDir } from '../sidecar/onnx/session.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import {
  Allocator, checkVersion, cpuMemoryInfo, cudaProviderOptionsString, Env, IoBinding, MemoryInfo, OrtCallError, ortLibrary,
  RunOptions, Session, SessionOptions, SLOTS, Value, type CallName,
} from '../sidecar/ort-capi/index.ts';
import { bindRunRelease, exposeGc } from './ort-capi-cycle.ts';
import { addOneGraph, bf16CastGraph, foldableGraph, gqaGraph, pseudoRandom, referenceAttention, type GqaShape } from './ort-capi-graphs.ts';

// ONNX Runtime also logs each provider library it cannot load ("Failed to load library
// libonnxruntime_providers_shared.so") to stderr; the tests read the thrown errors, so its process-wide
// log stays at fatal here, set before the first session makes ORT's env (issue 19, item 6).
ort.env.logLevel = 'fatal';

// Every C call goes through ortLibrary().fn: count them, so the last test can show each slot was exercised.
const calls = new Map<CallName, number>();
beforeAll(() => {
  const { fn } = ortLibrary();
  for (const name of Object.keys(fn) as CallName[]) {
    const real = fn[name];
    fn[name] = (...args: unknown[]) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return real(...args);
    };
  }
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-capi-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const threads = () => fs.readdirSync('/proc/self/task').length;
const messageOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('ort-capi: the library', () => {
  it("loads onnxruntime-node's own libonnxruntime.so.1, whose version is onnxruntime-node's", () => {
    const lib = ortLibrary();
    expect(lib.path).toBe(path.join(nativeBindingDir(), 'libonnxruntime.so.1'));
    expect(lib.version).toBe(ort.env.versions.common);
    expect(lib.version).toBe('1.30.0');
  });

  it('refuses an older library and accepts a newer 1.x one (the table is append-only)', () => {
    const file = '/opt/ort/libonnxruntime.so.1';
    expect(messageOf(() => checkVersion('1.29.2', file))).toBe(
      'libonnxruntime.so.1 at /opt/ort/libonnxruntime.so.1 is 1.29.2; this binding was written for ORT API 30 (1.30) and needs ONNX Runtime 1.30 or a newer 1.x',
    );
    expect(messageOf(() => checkVersion('2.0.0', file))).toMatch(/ is 2\.0\.0; this binding was written for ORT API 30 \(1\.30\)/);
    expect(messageOf(() => checkVersion('dev', file))).toMatch(/reports version "dev", which is not major\.minor\.patch/);
    expect(() => checkVersion('1.30.0', file)).not.toThrow();
    expect(() => checkVersion('1.31.1', file)).not.toThrow();
  });

  it('shares one ONNX Runtime with onnxruntime-node: sessions of both APIs run side by side', async () => {
    const model = addOneGraph(3);
    const jsSession = await ort.InferenceSession.create(model.bytes);
    using session = Session.fromBytes(model.bytes);
    using binding = new IoBinding(session);
    const y = new Float32Array(3);
    using x = Value.fromArray(Float32Array.of(1, 2, 3), [3]);
    using yv = Value.fromArray(y, [3]);
    binding.bindInput('x', x).bindOutput('y', yv);
    binding.run();
    const js = await jsSession.run({ x: new ort.Tensor('float32', Float32Array.of(10, 20, 30), [3]) });
    expect(Array.from(y)).toEqual([2, 3, 4]);
    expect(Array.from(js.y.data as Float32Array)).toEqual([11, 21, 31]);
    await jsSession.release();
    const mapped = new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => /libonnxruntime\.so/.test(l)).map((l) => l.split(/\s+/).pop()));
    expect([...mapped]).toEqual([fs.realpathSync(ortLibrary().path)]);
  });

  it('works in worker threads too (the engine runs in one), before and after the main thread uses it', async () => {
    const inWorker = async (x: number[]) => {
      const worker = new Worker(new URL('../sidecar/engine/thread-bootstrap.js', import.meta.url), {
        workerData: { entry: new URL('./ort-capi-worker.ts', import.meta.url).href, x },
      });
      try {
        return await new Promise<number[]>((resolve, reject) => worker.once('message', resolve).once('error', reject));
      } finally {
        await worker.terminate();
      }
    };
    expect(await inWorker([1, 2])).toEqual([2, 3]);
    using session = Session.fromBytes(addOneGraph(1).bytes);
    expect(await inWorker([5])).toEqual([6]);
    expect(session.outputNames).toEqual(['y']);
  });

  it('an env of our own is a counted reference to the process env, released on its own', () => {
    const env = Env.create({ logLevel: 'error', logId: 'ort-capi-test' });
    using session = Session.fromBytes(addOneGraph(1).bytes, {}, env);
    env.release();
    env.release();
    expect(env.released).toBe(true);
    expect(session.inputNames).toEqual(['x']);
  });
});

describe('ort-capi: sessions and options', () => {
  it('reads input and output names, counts and tensor types', () => {
    const g = new GraphBuilder('two_in');
    const a = g.input('a', DataType.FLOAT, ['batch', 3]);
    const ids = g.input('ids', DataType.INT64, [2]);
    g.op('Gather', [a, ids], { axis: 1 }, { output: 'picked' });
    g.output('picked', DataType.FLOAT, ['batch', 2]);
    using session = Session.fromBytes(g.build().bytes);
    expect(session.inputNames).toEqual(['a', 'ids']);
    expect(session.outputNames).toEqual(['picked']);
    expect(session.inputInfo('a')).toEqual({ elementType: 'float32', elementTypeId: 1, dims: [-1, 3] });
    expect(session.inputInfo('ids')).toEqual({ elementType: 'int64', elementTypeId: 7, dims: [2] });
    expect(session.outputInfo('picked')).toEqual({ elementType: 'float32', elementTypeId: 1, dims: [-1, 2] });
    expect(messageOf(() => session.inputInfo('picked'))).toBe('Session: no input named "picked" (inputs: a, ids)');
  });

  it('an error names the failing call and carries ORT message and code', () => {
    let error: unknown;
    try {
      Session.fromBytes(new Uint8Array([1, 2, 3, 4]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OrtCallError);
    const e = error as OrtCallError;
    expect(e.call).toBe('CreateSessionFromArray');
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/^CreateSessionFromArray: .*protobuf.* \(ORT_INVALID_PROTOBUF 7\)$/s);
  });

  it('reads external weights from the directory given as a session option', () => {
    const { tensors } = readSafetensorsHeader('test/fixtures/anole-tiny/model.safetensors');
    const embed = tensors.get('model.embed_tokens.weight')!;
    const g = new GraphBuilder('lookup');
    const ids = g.input('ids', DataType.INT64, [2]);
    g.op('Cast', [g.gatherWeightRows(embed, ids)], { to: DataType.FLOAT }, { output: 'rows' });
    const h = embed.shape[1];
    g.output('rows', DataType.FLOAT, [2, h]);
    const built = g.build();
    expect(built.externalDir).toBeDefined();
    using session = Session.fromBytes(built.bytes, { externalDataDir: built.externalDir, config: { 'session.disable_cpu_ep_fallback': '0' } });
    using binding = new IoBinding(session);
    using idv = Value.fromArray(BigInt64Array.of(7n, 8191n), [2]);
    const rows = new Float32Array(2 * h);
    using rowsv = Value.fromArray(rows, [2, h]);
    binding.bindInput('ids', idv).bindOutput('rows', rowsv);
    binding.run();
    const all = readTensorAsFloat32(embed);
    expect(Array.from(rows.subarray(0, h))).toEqual(Array.from(all.subarray(7 * h, 8 * h)));
    expect(Array.from(rows.subarray(h))).toEqual(Array.from(all.subarray(8191 * h, 8192 * h)));
  });

  it('graph optimization level and profiling take effect: the folded Add runs only with optimization off', () => {
    const ranFoldedAdd = (graphOptimization: 'disabled' | 'all') => {
      using session = Session.fromBytes(foldableGraph().bytes, { graphOptimization, profilePrefix: path.join(tmp, `profile-${graphOptimization}`) });
      using binding = new IoBinding(session);
      const y = new Float32Array(2);
      using x = Value.fromArray(Float32Array.of(1, 2), [2]);
      using yv = Value.fromArray(y, [2]);
      binding.bindInput('x', x).bindOutput('y', yv);
      binding.run();
      expect(Array.from(y)).toEqual([5, 10]);
      const trace = session.endProfiling();
      expect(path.dirname(trace)).toBe(tmp);
      return fs.readFileSync(trace, 'utf8').includes('folded_add');
    };
    expect(ranFoldedAdd('disabled')).toBe(true);
    expect(ranFoldedAdd('all')).toBe(false);
  });

  it('intra-op threads and the parallel mode with inter-op threads start the thread pools asked for', () => {
    const started = (config: Parameters<typeof Session.fromBytes>[1]) => {
      const before = threads();
      const session = Session.fromBytes(addOneGraph(2).bytes, config);
      const after = threads();
      session.release();
      return after - before;
    };
    const base = started({ intraOpThreads: 1 });
    expect(started({ intraOpThreads: 4 }) - base).toBe(3);
    expect(started({ intraOpThreads: 1, sequential: false, interOpThreads: 3 }) - base).toBe(2);
  });

  it('appending the CUDA provider fails here (no provider libraries) with an error naming the call', () => {
    const options = SessionOptions.create();
    expect(messageOf(() => options.appendCuda())).toMatch(/^SessionOptionsAppendExecutionProvider_CUDA_V2: .*Failed to load shared library/);
    expect(messageOf(() => options.appendCuda({ device_id: 0, enable_cuda_graph: true }))).toMatch(
      /^UpdateCUDAProviderOptions: .*libonnxruntime_providers_shared\.so/s,
    );
    expect(messageOf(() => cudaProviderOptionsString())).toMatch(/^GetCUDAProviderOptionsAsString: .*libonnxruntime_providers_shared\.so/s);
    expect(messageOf(() => SessionOptions.create({ cuda: { gpu_mem_limit: 2 ** 30 } }))).toMatch(/^UpdateCUDAProviderOptions: /);
    options.release();
    expect(calls.get('CreateCUDAProviderOptions')).toBe(calls.get('ReleaseCUDAProviderOptions'));
  });
});

describe('ort-capi: memory, values and IoBinding', () => {
  it('runs over JS-owned input and output buffers: results land in the JS array, no rebinding between runs', () => {
    using session = Session.fromBytes(addOneGraph().bytes);
    const x = Float32Array.of(1, 2, 3, 4);
    const y = new Float32Array(4);
    using xv = Value.fromArray(x, [4]);
    using yv = Value.fromArray(y, [4]);
    using binding = new IoBinding(session);
    binding.bindInput('x', xv).bindOutput('y', yv);
    binding.run();
    expect(Array.from(y)).toEqual([2, 3, 4, 5]);
    x.set([10, 20, 30, 40]);
    using runOptions = RunOptions.create({ gpu_graph_id: '-1' });
    binding.run(runOptions);
    expect(Array.from(y)).toEqual([11, 21, 31, 41]);
    expect(yv.dataPointer()).toBe(koffiAddress(y));
    binding.synchronizeInputs();
    binding.synchronizeOutputs();
    const [out] = binding.outputValues();
    expect(out.dataPointer()).toBe(koffiAddress(y));
    expect(out.typeAndShape()).toEqual({ elementType: 'float32', elementTypeId: 1, dims: [4] });
    out.release();
  });

  it('a value over a subarray reads and writes exactly that slice of the larger buffer', () => {
    using session = Session.fromBytes(addOneGraph(2).bytes);
    using binding = new IoBinding(session);
    const big = Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7);
    using x = Value.fromArray(big.subarray(1, 3), [2]);
    using y = Value.fromArray(big.subarray(5, 7), [2]);
    expect(y.dataPointer() - x.dataPointer()).toBe(16n);
    binding.bindInput('x', x).bindOutput('y', y);
    binding.run();
    expect(Array.from(big)).toEqual([0, 1, 2, 3, 4, 2, 3, 7]);
  });

  it('BindInput with an unknown name fails naming the call and leaves the binding usable; outputs are checked by name', () => {
    using session = Session.fromBytes(addOneGraph(2).bytes);
    using binding = new IoBinding(session);
    const y = new Float32Array(2);
    using x = Value.fromArray(Float32Array.of(5, 6), [2]);
    using yv = Value.fromArray(y, [2]);
    binding.bindInput('x', x).bindOutput('y', yv);
    using stray = Value.fromArray(new Float32Array(2), [2]);
    expect(messageOf(() => binding.bindInput('nope', stray))).toMatch(/^BindInput: .*nope/);
    expect(messageOf(() => binding.bindOutput('nope', stray))).toBe('IoBinding.bindOutput: the session has no output "nope" (outputs: y)');
    binding.run();
    expect(Array.from(y)).toEqual([6, 7]);
  });

  it('clears inputs and outputs separately', () => {
    using session = Session.fromBytes(addOneGraph(1).bytes);
    using binding = new IoBinding(session);
    using x = Value.fromArray(Float32Array.of(1), [1]);
    using y = Value.fromArray(new Float32Array(1), [1]);
    binding.bindInput('x', x).bindOutput('y', y);
    binding.clearOutputs();
    expect(binding.outputValues()).toEqual([]);
    expect(messageOf(() => binding.run())).toMatch(/^RunWithBinding: At least one output should be requested/);
    binding.bindOutput('y', y);
    binding.run();
    binding.clearInputs();
    expect(messageOf(() => binding.run())).toMatch(/^RunWithBinding: .*input.*x/is);
  });

  it('an output bound to a device memory info is allocated by ORT and read back as a copy', () => {
    using session = Session.fromBytes(addOneGraph().bytes);
    using binding = new IoBinding(session);
    using x = Value.fromArray(Float32Array.of(1, 2, 3), [3]);
    binding.bindInput('x', x).bindOutputToDevice('y', cpuMemoryInfo());
    binding.run();
    const [y] = binding.outputValues();
    expect(y.dims).toEqual([3]);
    expect(y.memoryInfo().name).toBe('Cpu');
    const copy = y.read() as Float32Array;
    expect(Array.from(copy)).toEqual([2, 3, 4]);
    y.release();
    expect(Array.from(copy)).toEqual([2, 3, 4]);
  });

  it("a session's allocator (CreateAllocator with a CPU memory info) allocates values ORT owns", () => {
    const session = Session.fromBytes(addOneGraph(3).bytes);
    const memory = MemoryInfo.cpu('arena');
    const allocator = Allocator.forSession(session, memory);
    const y = Value.allocate(allocator, [3], 'float32');
    expect(y.dataPointer()).not.toBe(0n);
    const binding = new IoBinding(session);
    using x = Value.fromArray(Float32Array.of(7, 8, 9), [3]);
    binding.bindInput('x', x).bindOutput('y', y);
    binding.run();
    expect(Array.from(y.read() as Float32Array)).toEqual([8, 9, 10]);
    expect(messageOf(() => session.release())).toBe('Session.release: still in use by Allocator, IoBinding; release those first');
    binding.release();
    y.release();
    allocator.release();
    memory.release();
    session.release();
    expect(session.released).toBe(true);
  });

  it('memory infos describe CPU and CUDA memory; a CUDA one needs no GPU', () => {
    using cuda = MemoryInfo.cuda(1);
    expect([cuda.name, cuda.deviceId, cuda.memType, cuda.allocatorKind, cuda.isCpu]).toEqual(['Cuda', 1, 'default', 'device', false]);
    using cpu = MemoryInfo.cpu('arena', 'cpuOutput');
    expect([cpu.name, cpu.deviceId, cpu.memType, cpu.allocatorKind, cpu.isCpu]).toEqual(['Cpu', 0, 'cpuOutput', 'arena', true]);
  });

  it('bf16 goes through the C API: a Cast graph float → bfloat16 → float over Uint16 bits', () => {
    const floats = Float32Array.of(1, -2.5, 3.140625, 1e-3, 65504, -0.1, 1 + 2 ** -8, 1 + 3 * 2 ** -8);
    const n = floats.length;
    const bits = new Uint32Array(floats.buffer);
    const bf16 = Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16); // round to nearest even
    const widened = new Float32Array(Uint32Array.from(bf16, (h) => h << 16).buffer);
    using session = Session.fromBytes(bf16CastGraph(n).bytes);
    expect(session.inputInfo('hb').elementType).toBe('bfloat16');
    using binding = new IoBinding(session);
    const xb = new Uint16Array(n);
    const hf = new Float32Array(n);
    using xv = Value.fromArray(floats, [n]);
    using hbv = Value.fromArray(bf16, [n], 'bfloat16');
    using xbv = Value.fromArray(xb, [n], 'bfloat16');
    using hfv = Value.fromArray(hf, [n]);
    binding.bindInput('x', xv).bindInput('hb', hbv).bindOutput('xb', xbv).bindOutput('hf', hfv);
    binding.run();
    expect(Array.from(xb)).toEqual(Array.from(bf16));
    expect(Array.from(hf)).toEqual(Array.from(widened));
    expect(xbv.typeAndShape().elementType).toBe('bfloat16');
  });

  it('bool and int32 values: y = Not(x), n = x.int32 + 1', () => {
    const g = new GraphBuilder('bool_int');
    const x = g.input('x', DataType.BOOL, [3]);
    const i = g.input('i', DataType.INT32, [3]);
    g.op('Not', [x], {}, { output: 'y' });
    g.op('Add', [i, g.constant('one', DataType.INT32, [], [1])], {}, { output: 'n' });
    g.output('y', DataType.BOOL, [3]);
    g.output('n', DataType.INT32, [3]);
    using session = Session.fromBytes(g.build().bytes);
    using binding = new IoBinding(session);
    const y = new Uint8Array(3);
    const n = new Int32Array(3);
    using xv = Value.fromArray(Uint8Array.of(1, 0, 1), [3], 'bool');
    using iv = Value.fromArray(Int32Array.of(-1, 0, 41), [3]);
    using yv = Value.fromArray(y, [3], 'bool');
    using nv = Value.fromArray(n, [3]);
    binding.bindInput('x', xv).bindInput('i', iv).bindOutput('y', yv).bindOutput('n', nv);
    binding.run();
    expect(Array.from(y)).toEqual([0, 1, 0]);
    expect(Array.from(n)).toEqual([0, 1, 42]);
    expect(yv.typeAndShape().elementType).toBe('bool');
  });

  it('views: bounds are checked, and a value refuses release while a view of it lives', () => {
    using whole = Value.fromArray(new Float32Array(8), [2, 4]);
    expect(messageOf(() => whole.view(20, [1, 4]))).toBe("Value.view: [20, 36) is outside this value's 32 bytes");
    const row = whole.view(16, [1, 4]);
    expect(row.dataPointer()).toBe(whole.dataPointer() + 16n);
    expect(messageOf(() => whole.release())).toBe('Value.release: 1 view(s) of this value are still alive; release them first');
    row.release();
    row.release();
    expect(messageOf(() => row.dataPointer())).toBe('Value was used after release()');
  });
});

describe('ort-capi: the KV cache updated in place (GroupQueryAttention, past and present in one buffer)', () => {
  const shape: GqaShape = { batch: 2, heads: 2, headSize: 8, maxSeq: 8 };
  const { heads: H, headSize: D, maxSeq: S } = shape;
  const rowLength = H * S * D;

  /** Runs one step for `batch` rows over the cache values given; returns the attention output. */
  function step(batch: number, pastK: Value, pastV: Value, seqlens: Int32Array, seed: number) {
    const s = { ...shape, batch };
    const [q, k, v] = [pseudoRandom(batch * H * D, seed), pseudoRandom(batch * H * D, seed + 1), pseudoRandom(batch * H * D, seed + 2)];
    const out = new Float32Array(batch * H * D);
    using session = Session.fromBytes(gqaGraph(s).bytes);
    using binding = new IoBinding(session);
    const values = [
      Value.fromArray(q, [batch, 1, H * D]), Value.fromArray(k, [batch, 1, H * D]), Value.fromArray(v, [batch, 1, H * D]),
      Value.fromArray(seqlens, [batch]), Value.fromArray(Int32Array.of(Math.max(...seqlens) + 1), []), Value.fromArray(out, [batch, 1, H * D]),
    ];
    binding.bindInput('query', values[0]).bindInput('key', values[1]).bindInput('value', values[2]);
    binding.bindInput('past_key', pastK).bindInput('past_value', pastV).bindInput('seqlens_k', values[3]).bindInput('total_sequence_length', values[4]);
    binding.bindOutput('output', values[5]).bindOutput('present_key', pastK).bindOutput('present_value', pastV);
    binding.run();
    binding.release();
    for (const value of values) value.release();
    return { q, k, v, out };
  }

  /** The cache positions (row, head, t) whose D floats differ. */
  function changedPositions(before: Float32Array, after: Float32Array): string[] {
    const changed = new Set<string>();
    for (let i = 0; i < before.length; i++) {
      if (before[i] !== after[i]) changed.add(`${Math.floor(i / rowLength)},${Math.floor(i / (S * D)) % H},${Math.floor(i / D) % S}`);
    }
    return [...changed];
  }

  it('writes only position seqlens_k of each row into the JS-visible cache; the output matches a JS reference', () => {
    const keys = pseudoRandom(2 * rowLength, 1);
    const vals = pseudoRandom(2 * rowLength, 2);
    const [keys0, vals0] = [keys.slice(), vals.slice()];
    using kv = Value.fromArray(keys, [2, H, S, D]);
    using vv = Value.fromArray(vals, [2, H, S, D]);
    const seqlens = Int32Array.of(3, 5);
    const { q, k, v, out } = step(2, kv, vv, seqlens, 10);
    const expected = ['0,0,3', '0,1,3', '1,0,5', '1,1,5'];
    expect(changedPositions(keys0, keys)).toEqual(expected);
    expect(changedPositions(vals0, vals)).toEqual(expected);
    expect(Array.from(keys.subarray(((1 * H + 1) * S + 5) * D, ((1 * H + 1) * S + 6) * D))).toEqual(Array.from(k.subarray((1 * H + 1) * D, (1 * H + 2) * D)));
    const reference = referenceAttention(shape, q, k, v, keys0, vals0, seqlens);
    out.forEach((o, i) => expect(o).toBeCloseTo(reference[i], 5));
  });

  it('a view of one row of a 2-row cache is updated in place; the other row is untouched', () => {
    const keys = pseudoRandom(2 * rowLength, 3);
    const vals = pseudoRandom(2 * rowLength, 4);
    const [keys0, vals0] = [keys.slice(), vals.slice()];
    using kv = Value.fromArray(keys, [2, H, S, D]);
    using vv = Value.fromArray(vals, [2, H, S, D]);
    const row1K = kv.view(rowLength * 4, [1, H, S, D]);
    const row1V = vv.view(rowLength * 4, [1, H, S, D]);
    const seqlens = Int32Array.of(6);
    const { q, k, v, out } = step(1, row1K, row1V, seqlens, 20);
    row1K.release();
    row1V.release();
    expect(changedPositions(keys0, keys)).toEqual(['1,0,6', '1,1,6']);
    expect(changedPositions(vals0, vals)).toEqual(['1,0,6', '1,1,6']);
    const reference = referenceAttention({ ...shape, batch: 1 }, q, k, v, keys0.subarray(rowLength), vals0.subarray(rowLength), seqlens);
    out.forEach((o, i) => expect(o).toBeCloseTo(reference[i], 5));
  });
});

describe('ort-capi: release', () => {
  it('release() is idempotent, `using` releases, a released handle refuses use, and a session waits for its binding', () => {
    const session = Session.fromBytes(addOneGraph(1).bytes);
    let kept: IoBinding;
    {
      using binding = new IoBinding(session);
      kept = binding;
      expect(messageOf(() => session.release())).toBe('Session.release: still in use by IoBinding; release those first');
    }
    expect(kept.released).toBe(true);
    kept.release();
    session.release();
    session.release();
    expect(messageOf(() => new IoBinding(session))).toBe('Session was used after release()');
    const options = SessionOptions.create();
    options.release();
    options.release();
    const runOptions = RunOptions.create();
    runOptions.release();
    runOptions.release();
  });

  it('2,000 create-value / bind / run / read / release cycles keep RSS flat', () => {
    const session = Session.fromBytes(addOneGraph(256).bytes);
    const x = new Float32Array(256).fill(1);
    const y = new Float32Array(256);
    const cycle = () => bindRunRelease(session, x, y);
    // Collected garbage before each reading, so the figure is native memory, not JS heap waiting for a GC.
    const gc = exposeGc();
    for (let i = 0; i < 3000; i++) cycle(); // warm-up: malloc arenas and the JIT settle (RSS climbs ~1 MB per 1,000 until then)
    gc();
    const warm = process.memoryUsage().rss;
    for (let i = 0; i < 2000; i++) cycle();
    gc();
    const end = process.memoryUsage().rss;
    session.release();
    const growthMb = (end - warm) / 2 ** 20;
    console.log(`ort-capi soak: RSS after 3,000 warm-up cycles ${(warm / 2 ** 20).toFixed(1)} MB, after 2,000 more ${(end / 2 ** 20).toFixed(1)} MB (${growthMb.toFixed(2)} MB)`);
    expect(y[0]).toBe(2);
    expect(growthMb).toBeLessThan(3);
  });

  it('every slot in api-table.ts was called by the tests above', () => {
    const unused = (Object.keys(SLOTS) as CallName[]).filter((name) => !calls.get(name));
    expect(unused).toEqual([]);
  });
});

function koffiAddress(array: Float32Array): bigint {
  return koffi.address(array.buffer) + BigInt(array.byteOffset);
}
