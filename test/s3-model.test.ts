import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, type S3Settings } from '../contract/s3.ts';
import { parseS3Uri } from '../contract/s3-uri.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { verifyBundle } from '../sidecar/bundle/manifest.ts';
import { resolveModelLocation } from '../sidecar/bundle/model-location.ts';
import { downloadS3Model, s3CacheDir } from '../sidecar/bundle/s3-download.ts';
import { uploadBundle } from '../sidecar/bundle/s3-upload.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { convertCommand } from '../cli/commands/convert.ts';
import { resolveModelDir } from '../cli/default-model.ts';
import { sequenceRequest } from './generation-harness.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const HF_FILES = ['config.json', 'generation_config.json', 'preprocessor_config.json', 'processor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
const MiB = 1 << 20;

let stack: LocalStack;
let tmp: string;
let localBundle: string;
let savedEnv: NodeJS.ProcessEnv;
const uri = (prefix: string) => `s3://${stack.s3.bucket}/${prefix}`;

/** A real S3 client that records each command it sends (name, key, range). */
function recordingClient(settings: S3Settings): { s3: S3Client; calls: { command: string; key?: string; range?: string }[] } {
  const s3 = createS3Client(settings);
  const calls: { command: string; key?: string; range?: string }[] = [];
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: string; Range?: string };
      calls.push({ command: context.commandName ?? '?', key: input.Key, range: input.Range });
      return next(args);
    },
    { step: 'initialize', name: 'recordCalls' },
  );
  return { s3, calls };
}

/** The fixture's Hugging Face directory as is under hf/anole-tiny/ (once per file). */
let hfUpload: Promise<void> | undefined;
function uploadHfDirectory(): Promise<void> {
  return (hfUpload ??= (async () => {
    const s3 = createS3Client(stack.s3);
    for (const name of HF_FILES) {
      await s3.send(new PutObjectCommand({ Bucket: stack.s3.bucket, Key: `hf/anole-tiny/${name}`, Body: fs.readFileSync(path.join(FIXTURE, name)) }));
    }
    s3.destroy();
  })());
}

/** Sampled text tokens (seed 3) from a model directory: equal tokens mean equal weights and graphs in practice. */
async function tokensOf(dir: string): Promise<number[]> {
  const generator = await StepGenerator.load(openModel(dir), { intraOpNumThreads: 1 });
  try {
    for await (const e of generator.generate([sequenceRequest(generator.config, [0, 16400, 16500, 16600], 'text', 10, { seed: 3 })], { chunkSize: 5 })) {
      if (e.type === 'done') return e.tokens;
    }
    throw new Error('no done event');
  } finally {
    await generator.release();
  }
}

beforeAll(async () => {
  stack = await startLocalStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-s3-model-'));
  localBundle = path.join(tmp, 'local-fp32');
  await writeBundle({ from: FIXTURE, out: localBundle, precision: { dtype: 'fp32', target: 'cpu' } });
  // resolveModelLocation and the CLI read the S3 settings from the environment, as in use
  savedEnv = { ...process.env };
  Object.assign(process.env, stack.env, { ANOLE_S3_CACHE: path.join(tmp, 'env-cache') });
});

afterAll(async () => {
  process.env = savedEnv;
  await stack?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('models in S3 (s3://bucket/prefix/, against the local S3 server)', () => {
  it('convert --out s3:// uploads a bundle; resolving it gives a bundle that generates what the local one does', async () => {
    // in process (cli-convert.test.ts runs the CLI itself): a child costs seconds of start-up here
    await convertCommand({ from: FIXTURE, out: uri('models/converted/'), dtype: 'fp32', target: 'cpu' });

    const progress = new Map<string, number>();
    const dir = await resolveModelLocation(uri('models/converted/'), (file, done, size) => {
      expect(done).toBeLessThanOrEqual(size);
      progress.set(file, done);
    });
    expect(dir).toBe(s3CacheDir(path.join(tmp, 'env-cache'), parseS3Uri(uri('models/converted/'))));
    const manifest = await verifyBundle(dir);
    expect(manifest.files).toEqual((await verifyBundle(localBundle)).files); // the same bytes as a local conversion
    expect(progress.get('model.safetensors')).toBe(manifest.files['model.safetensors'].bytes);
    expect(await tokensOf(dir)).toEqual(await tokensOf(localBundle));

    // a second convert to the same prefix is refused before it converts anything
    await expect(convertCommand({ from: FIXTURE, out: uri('models/converted/'), dtype: 'fp32', target: 'cpu' })).rejects.toThrow(
      /^s3:\/\/anole\/models\/converted\/ already holds a bundle \(manifest\.json\); refusing to overwrite it$/,
    );
  });

  it('uploads big files in parts and the manifest last; downloads them as parallel ranged GETs; a second download fetches nothing', async () => {
    const to = parseS3Uri(uri('models/parts/'));
    const up = recordingClient(stack.s3);
    await uploadBundle({ s3: up.s3, dir: localBundle, to, partBytes: 5 * MiB, queueSize: 2 });
    const weightsBytes = fs.statSync(path.join(localBundle, 'model.safetensors')).size;
    expect(weightsBytes).toBeGreaterThan(5 * MiB); // else this test would not see parts
    expect(up.calls.filter((c) => c.command === 'UploadPartCommand' && c.key === 'models/parts/model.safetensors').length).toBe(Math.ceil(weightsBytes / (5 * MiB)));
    const puts = up.calls.filter((c) => c.command === 'PutObjectCommand' || c.command === 'CompleteMultipartUploadCommand');
    expect(puts.at(-1)?.key).toBe('models/parts/manifest.json');
    up.s3.destroy();

    const cacheDir = path.join(tmp, 'parts-cache');
    const down = recordingClient(stack.s3);
    const dir = await downloadS3Model({ s3: down.s3, from: to, cacheDir, partBytes: MiB, concurrency: 3 });
    await verifyBundle(dir);
    const ranges = down.calls.filter((c) => c.command === 'GetObjectCommand' && c.key === 'models/parts/model.safetensors').map((c) => c.range);
    expect(ranges.length).toBe(Math.ceil(weightsBytes / MiB));
    expect(ranges).toContain(`bytes=${MiB}-${2 * MiB - 1}`);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.partial'))).toEqual([]);

    const mtimes = fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs);
    down.calls.length = 0;
    expect(await downloadS3Model({ s3: down.s3, from: to, cacheDir, partBytes: MiB })).toBe(dir);
    expect(down.calls.map((c) => c.command)).toEqual(['ListObjectsCommand']);
    expect(fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs)).toEqual(mtimes);
    down.s3.destroy();
  });

  it('an interrupted download (S3 gone mid-file) resumes with only the parts it lacks', async () => {
    const to = parseS3Uri(uri('models/resume/'));
    const s3 = createS3Client(stack.s3);
    await uploadBundle({ s3, dir: localBundle, to });
    const cacheDir = path.join(tmp, 'resume-cache');
    let outage: Promise<void> | undefined;
    await expect(
      downloadS3Model({
        s3,
        from: to,
        cacheDir,
        partBytes: MiB,
        concurrency: 2,
        onProgress: (file, done) => {
          if (file === 'model.safetensors' && done > 3 * MiB) outage ??= stack.s3Front.stop();
        },
      }),
    ).rejects.toThrow();
    await outage;
    await stack.s3Front.start();
    const dir = s3CacheDir(cacheDir, to);
    expect(fs.existsSync(path.join(dir, 'manifest.json'))).toBe(false); // not a bundle until complete
    const parts = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.partial.json'), 'utf8')).done as number[];
    expect(parts.length).toBeGreaterThanOrEqual(2); // > 3 MiB arrived with at most 2 parts in flight
    s3.destroy();

    const again = recordingClient(stack.s3);
    await downloadS3Model({ s3: again.s3, from: to, cacheDir, partBytes: MiB, concurrency: 2 });
    await verifyBundle(dir);
    const partCount = Math.ceil(fs.statSync(path.join(dir, 'model.safetensors')).size / MiB);
    const refetched = again.calls.filter((c) => c.command === 'GetObjectCommand' && c.key === 'models/resume/model.safetensors');
    expect(refetched.length).toBe(partCount - parts.length);
    again.s3.destroy();
  });

  it('refuses an object whose bytes differ from the manifest (same size), naming it, after fetching it twice', async () => {
    const to = parseS3Uri(uri('models/corrupt/'));
    const rec = recordingClient(stack.s3);
    await uploadBundle({ s3: rec.s3, dir: localBundle, to });
    const bytes = fs.readFileSync(path.join(localBundle, 'tokenizer.json'));
    bytes[100] ^= 1;
    await rec.s3.send(new PutObjectCommand({ Bucket: to.bucket, Key: `${to.prefix}tokenizer.json`, Body: bytes }));
    rec.calls.length = 0;
    const cacheDir = path.join(tmp, 'corrupt-cache');
    await expect(downloadS3Model({ s3: rec.s3, from: to, cacheDir })).rejects.toThrow(
      /^s3:\/\/anole\/models\/corrupt\/tokenizer\.json: sha256 [0-9a-f]{64}, manifest\.json says [0-9a-f]{64} \(downloaded twice; removed\)$/,
    );
    expect(rec.calls.filter((c) => c.key === 'models/corrupt/tokenizer.json').length).toBe(2);
    const dir = s3CacheDir(cacheDir, to);
    expect(fs.existsSync(path.join(dir, 'tokenizer.json'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'manifest.json'))).toBe(false);
    rec.s3.destroy();
  });

  it('a model replaced under the same prefix: changed objects are fetched again, objects gone are removed from the cache', async () => {
    const rec = recordingClient(stack.s3);
    const put = (name: string, body: string) => rec.s3.send(new PutObjectCommand({ Bucket: stack.s3.bucket, Key: `replaced/${name}`, Body: body }));
    await put('config.json', '{"v": 1}');
    await put('weights.bin', 'old weights');
    await put('extra.txt', 'only in the first upload');
    const from = parseS3Uri(uri('replaced/'));
    const cacheDir = path.join(tmp, 'replaced-cache');
    const dir = await downloadS3Model({ s3: rec.s3, from, cacheDir });
    expect(fs.readdirSync(dir).sort()).toEqual(['.anole-download.json', 'config.json', 'extra.txt', 'weights.bin']);

    await put('weights.bin', 'new weights!');
    await rec.s3.send(new DeleteObjectCommand({ Bucket: stack.s3.bucket, Key: 'replaced/extra.txt' }));
    rec.calls.length = 0;
    await downloadS3Model({ s3: rec.s3, from, cacheDir });
    expect(rec.calls.filter((c) => c.command === 'GetObjectCommand').map((c) => c.key)).toEqual(['replaced/weights.bin']);
    expect(fs.readFileSync(path.join(dir, 'weights.bin'), 'utf8')).toBe('new weights!');
    expect(fs.readdirSync(dir).sort()).toEqual(['.anole-download.json', 'config.json', 'weights.bin']);
    rec.s3.destroy();
  });

  it('a missing prefix, a missing bucket, a prefix that holds no model and a missing local directory each give one clear error', async () => {
    await expect(resolveModelLocation(uri('models/nothing-here/'))).rejects.toThrow(/^s3:\/\/anole\/models\/nothing-here\/: no objects there/);
    await expect(resolveModelLocation('s3://no-such-bucket/models/x/')).rejects.toThrow(/^s3:\/\/no-such-bucket\/models\/x\/: listing failed: NoSuchBucket/);
    const s3 = createS3Client(stack.s3);
    await s3.send(new PutObjectCommand({ Bucket: stack.s3.bucket, Key: 'notes/readme.txt', Body: 'hello' }));
    s3.destroy();
    await expect(resolveModelLocation(uri('notes/'))).rejects.toThrow(/^s3:\/\/anole\/notes\/: neither a model bundle \(manifest\.json\) nor a Hugging Face directory \(config\.json\)/);
    await expect(resolveModelLocation('s3://Bad_Bucket/x')).rejects.toThrow(/a model location must look like s3:\/\/bucket\/prefix\//);
    // neither a directory, nor s3://, nor an owner/name repo id: said before anything tries to read it
    await expect(resolveModelLocation('/no/such/model-dir')).rejects.toThrow(/^\/no\/such\/model-dir: no such directory \(nor an s3:\/\/ location or a Hub repo id\)$/);
  });

  it("a Hugging Face directory uploaded as is works from s3://, and the CLI's --model takes it too", async () => {
    await uploadHfDirectory();
    const dir = await resolveModelLocation(uri('hf/anole-tiny'));
    for (const name of HF_FILES) expect(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(FIXTURE, name))), name).toBe(true);
    expect(fs.existsSync(path.join(dir, 'manifest.json'))).toBe(false);
    expect(await tokensOf(dir)).toEqual(await tokensOf(FIXTURE));

    // what every command does with --model / $ANOLE_MODEL (the cache already holds it)
    expect(await resolveModelDir(uri('hf/anole-tiny/'))).toBe(dir);
  });

  it('the worker process loads its model from ANOLE_MODEL=s3://…', async () => {
    await uploadHfDirectory();
    const cache = path.join(tmp, 'worker-cache');
    // node with tsx as a loader, as worker-process.test.ts starts it
    const child = spawn(process.execPath, ['--import', 'tsx', 'sidecar/worker/main.ts'], {
      env: { ...process.env, ...stack.env, ANOLE_MODEL: uri('hf/anole-tiny/'), ANOLE_S3_CACHE: cache, ANOLE_HEALTH_PORT: '0', ANOLE_WAIT_SECONDS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        readline.createInterface({ input: child.stdout! }).on('line', (l) => l.includes('"ready":true') && resolve());
        void exited.then((code) => reject(new Error(`worker exited (${code}) before it was ready:\n${stderr.join('\n')}`)));
      });
      const dir = s3CacheDir(cache, parseS3Uri(uri('hf/anole-tiny/')));
      for (const name of HF_FILES) expect(fs.statSync(path.join(dir, name)).size, name).toBe(fs.statSync(path.join(FIXTURE, name)).size);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
