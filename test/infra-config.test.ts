import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { resolveModelDir } from '../cli/default-model.ts';
import { s3SettingsFromEnv } from '../contract/s3.ts';
import { queueSettingsFromEnv } from '../contract/sqs.ts';
import { apiKeysFromEnv } from '../functions/api/auth.ts';
import { apiDepsFromEnv } from '../functions/api/deps-from-env.ts';
import { CONTAINER, ENV } from '../infra/config.ts';
import { HEALTH_PROBE } from '../infra/gpu-worker.ts';
import { DEFAULT_SETTINGS, parseS3Uri, settingsFromContext, SettingsError } from '../infra/settings.ts';
import { HUGEPAGE_MALLOC_TUNABLES } from '../sidecar/onnx/hugepage-malloc.ts';
import { workerConfigFromEnv } from '../sidecar/worker/start-worker.ts';

const context = (values: Record<string, unknown>) => (key: string) => values[key];

describe('settings from CDK context', () => {
  it('defaults: g6.xlarge, up to 2 instances, 15 idle minutes, no warm pool, IAM auth, model in the stack bucket', () => {
    expect(settingsFromContext(context({}))).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS).toMatchObject({ instanceTypes: ['g6.xlarge'], maxInstances: 2, idleMinutes: 15, warmPoolSize: 0, apiAuth: 'iam', maxReceiveCount: 5 });
    expect(DEFAULT_SETTINGS.modelUri).toBeUndefined();
  });

  it('reads strings from the command line and JSON values from cdk.json alike', () => {
    const fromCli = settingsFromContext(context({ 'anole:instanceTypes': 'g5.xlarge, g6e.2xlarge', 'anole:maxInstances': '8', 'anole:idleMinutes': '5', 'anole:modelUri': 's3://models/anole' }));
    const fromJson = settingsFromContext(context({ 'anole:instanceTypes': ['g5.xlarge', 'g6e.2xlarge'], 'anole:maxInstances': 8, 'anole:idleMinutes': 5, 'anole:modelUri': 's3://models/anole' }));
    expect(fromCli).toEqual(fromJson);
    expect(fromCli).toMatchObject({ instanceTypes: ['g5.xlarge', 'g6e.2xlarge'], maxInstances: 8, idleMinutes: 5, modelUri: 's3://models/anole' });
  });

  it('refuses bad values with an error naming the key', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ 'anole:instanceTypes': 'g6xlarge' }, /anole:instanceTypes: "g6xlarge" is not an EC2 instance type/],
      [{ 'anole:instanceTypes': ' , ' }, /anole:instanceTypes is empty/],
      [{ 'anole:maxInstances': '0' }, /anole:maxInstances must be an integer in \[1, 100\], got "0"/],
      [{ 'anole:maxInstances': 'two' }, /anole:maxInstances/],
      [{ 'anole:idleMinutes': 2.5 }, /anole:idleMinutes/],
      [{ 'anole:maxReceiveCount': '11' }, /anole:maxReceiveCount must be an integer in \[3, 10\]/],
      [{ 'anole:volumeThroughputMiBps': '100' }, /anole:volumeThroughputMiBps must be an integer in \[125, 2000\]/],
      [{ 'anole:apiAuth': 'token' }, /anole:apiAuth must be "iam" or "api-keys"/],
      [{ 'anole:modelUri': 'https://example.com/model' }, /anole:modelUri must look like s3:\/\/bucket\/prefix\//],
      [{ 'anole:alarmEmail': 'ops' }, /anole:alarmEmail is not an email address/],
    ];
    for (const [values, message] of bad) expect(() => settingsFromContext(context(values))).toThrow(message);
    expect(() => settingsFromContext(context({ 'anole:maxInstances': '-1' }))).toThrow(SettingsError);
  });

  it('S3 URIs: the prefix always ends in one "/" (or is empty for a whole bucket)', () => {
    expect(parseS3Uri('s3://models/anole-7b')).toEqual({ bucket: 'models', prefix: 'anole-7b/' });
    expect(parseS3Uri('s3://models/a/b//')).toEqual({ bucket: 'models', prefix: 'a/b/' });
    expect(parseS3Uri('s3://models')).toEqual({ bucket: 'models', prefix: '' });
    expect(() => parseS3Uri('s3://Models/x')).toThrow(SettingsError);
  });
});

describe('the environment names in infra/config.ts are the ones the code reads', () => {
  it('bucket and queue (contract/s3.ts, contract/sqs.ts)', () => {
    expect(s3SettingsFromEnv({ [ENV.bucket]: 'data-bucket' }).bucket).toBe('data-bucket');
    expect(queueSettingsFromEnv({ [ENV.queueUrl]: 'https://sqs.example/q' }).queueUrl).toBe('https://sqs.example/q');
  });

  it('the worker: webhook secret, health port, attempts (sidecar/worker/start-worker.ts)', () => {
    const config = workerConfigFromEnv('/opt/anole/model', {
      [ENV.bucket]: 'b',
      [ENV.queueUrl]: 'q',
      [ENV.webhookSecret]: 'whsec_abc',
      [ENV.healthPort]: String(CONTAINER.healthPort),
      [ENV.maxAttempts]: '5',
      [ENV.visibilitySeconds]: '90',
    });
    expect(config.webhookSecret).toBe('whsec_abc');
    expect(config.health?.port).toBe(CONTAINER.healthPort);
    expect(config.worker).toMatchObject({ maxAttempts: 5, visibilitySeconds: 90 });
  });

  it('the API: keys (functions/api/auth.ts) and the model directory (deps-from-env.ts, cli/default-model.ts)', async () => {
    expect(apiKeysFromEnv({ [ENV.apiKeys]: 'k1, k2' })).toEqual(['k1', 'k2']);
    await expect(apiDepsFromEnv({ [ENV.bucket]: 'b', [ENV.queueUrl]: 'q' })).rejects.toThrow(new RegExp(`^${ENV.model} is not set`));
    const saved = process.env[ENV.model];
    const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-model-env-'));
    process.env[ENV.model] = modelDir;
    try {
      expect(await resolveModelDir(undefined)).toBe(modelDir);
      // the container's path exists only in the container: here it is named as missing
      process.env[ENV.model] = CONTAINER.modelDir;
      await expect(resolveModelDir(undefined)).rejects.toThrow(`${CONTAINER.modelDir}: no such directory`);
    } finally {
      fs.rmSync(modelDir, { recursive: true, force: true });
      if (saved === undefined) delete process.env[ENV.model];
      else process.env[ENV.model] = saved;
    }
  });
});

describe('sidecar/Dockerfile', () => {
  const dockerfile = fs.readFileSync('sidecar/Dockerfile', 'utf8');
  // one logical line per instruction (continuations joined), comments dropped
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args = Object.fromEntries(instructions.filter((l) => l.startsWith('ARG ')).map((l) => l.slice(4).split('=') as [string, string]));
  const expand = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? `<unset ${name}>`);
  const froms = instructions.filter((l) => l.startsWith('FROM ')).map((l) => expand(l.slice(5)).split(/\s+/));
  const lastStage = instructions.slice(instructions.lastIndexOf(instructions.filter((l) => l.startsWith('FROM ')).at(-1)!));
  const runs = instructions.filter((l) => l.startsWith('RUN ')).join('\n');

  it('runs on a CUDA 13 + cuDNN runtime base (what onnxruntime-node 1.27+ provider libraries link), with Node 22 copied in', () => {
    const [runtime] = froms.at(-1)!;
    expect(runtime).toMatch(/^nvidia\/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d{2}\.04$/);
    expect(froms[0]).toEqual([expect.stringMatching(/^node:22(-|$)/), 'AS', 'node']);
    expect(lastStage).toContain('COPY --from=node /usr/local/bin/node /usr/local/bin/node');
  });

  it("installs production packages, then forces onnxruntime-node's CUDA provider download with its install flag, and checks it arrived", () => {
    expect(runs).toContain('npm ci --omit=dev');
    const install = /ONNXRUNTIME_NODE_INSTALL=(\S+) node (node_modules\/onnxruntime-node\/script\/install\.js)/.exec(runs);
    expect(install).not.toBeNull();
    const [, flag, script] = install!;
    // the flag is one the installed onnxruntime-node knows for linux/x64, and it fetches the CUDA provider
    expect(fs.existsSync(script)).toBe(true);
    // `1` forces the install of linux/x64's manifests (1.30's install-utils parses `cuda12` to nothing)
    const require = createRequire(import.meta.url);
    const previous = process.env.ONNXRUNTIME_NODE_INSTALL;
    process.env.ONNXRUNTIME_NODE_INSTALL = flag;
    try {
      expect(require(path.resolve('node_modules/onnxruntime-node/script/install-utils.js')).parseInstallFlag()).toBe(true);
    } finally {
      if (previous === undefined) delete process.env.ONNXRUNTIME_NODE_INSTALL;
      else process.env.ONNXRUNTIME_NODE_INSTALL = previous;
    }
    const metadata = require(path.resolve('node_modules/onnxruntime-node/script/install-metadata.js'));
    const files = (metadata.requirements['linux/x64'] as string[]).flatMap((m) => Object.keys(metadata.manifests[`linux/x64:${m}`])).map((f) => path.basename(f));
    expect(files).toContain('libonnxruntime_providers_cuda.so');
    for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) {
      expect(files).toContain(f);
      expect(runs).toContain(`test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/${f}`);
    }
  });

  it('pins onnxruntime-node to the exact version of package.json and the lockfile, and fails the build on another', () => {
    const pinned = instructions.find((l) => l.startsWith('ARG ONNXRUNTIME_NODE_VERSION='))!.split('=')[1];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(JSON.parse(fs.readFileSync('package.json', 'utf8')).dependencies['onnxruntime-node']).toBe(pinned);
    const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
    expect(lock.packages[''].dependencies['onnxruntime-node']).toBe(pinned);
    expect(lock.packages['node_modules/onnxruntime-node'].version).toBe(pinned);
    expect(runs).toMatch(/\[ "\$installed" = "\$ONNXRUNTIME_NODE_VERSION" \] \|\| \{ echo .*; exit 1; \}/);
  });

  it("checks, in the runtime image, that the CUDA provider's libraries are all there with the image's CUDA / cuDNN majors; requires the GPU", () => {
    expect(lastStage).toContain('COPY sidecar/check-cuda-libs.sh /usr/local/bin/check-cuda-libs');
    expect(lastStage).toContain('RUN check-cuda-libs node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so');
    expect(lastStage.findIndex((l) => l.startsWith('RUN check-cuda-libs'))).toBeGreaterThan(lastStage.findIndex((l) => l.startsWith('COPY --from=deps /app/node_modules')));
    expect(fs.statSync('sidecar/check-cuda-libs.sh').mode & 0o111).not.toBe(0);
    const env = lastStage.filter((l) => l.startsWith('ENV ')).flatMap((l) => l.slice(4).split(/\s+/));
    expect(env).toContain('ANOLE_REQUIRE_GPU=1');
  });

  it('builds dist/ (npm run build) in a stage of its own and copies only the build into the runtime', () => {
    const build = instructions.slice(instructions.findIndex((l) => / AS build$/.test(l)));
    expect(build.slice(0, build.findIndex((l, i) => i > 0 && l.startsWith('FROM ')))).toContain('RUN npm run build');
    expect(lastStage).toContain('COPY --from=build /app/dist ./dist');
    // the runtime holds no TypeScript sources: the worker needs no tsx
    for (const dir of ['bin', 'cli', 'sidecar', 'functions']) expect(lastStage.some((l) => l.startsWith(`COPY ${dir} `))).toBe(false);
  });

  it('has a healthcheck on /healthz (the same probe as the ECS task), runs `anole worker` as a non-root user', () => {
    const health = instructions.find((l) => l.startsWith('HEALTHCHECK '))!;
    expect(health).toMatch(/--start-period=300s/);
    const command = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    expect(command).toEqual(['node', '-e', HEALTH_PROBE]);
    expect(instructions.at(-1)).toBe('CMD ["node", "dist/anole.mjs", "worker"]');
    expect(lastStage.find((l) => l.startsWith('USER '))).toBe('USER anole');
    const env = lastStage.filter((l) => l.startsWith('ENV ')).flatMap((l) => l.slice(4).split(/\s+/));
    expect(env).toContain(`${ENV.healthPort}=${CONTAINER.healthPort}`);
    // glibc reads it at process start only: the image is where the worker gets it
    expect(env).toContain(`GLIBC_TUNABLES=${HUGEPAGE_MALLOC_TUNABLES}`);
  });

  it('keeps the model out of the image: nothing copies model weights, .dockerignore admits code only', () => {
    const copies = lastStage.filter((l) => l.startsWith('COPY ') && !l.startsWith('COPY --from'));
    for (const c of copies) expect(c).not.toMatch(/safetensors|\.onnx|\.cache|models\b/);
    const ignore = fs.readFileSync('.dockerignore', 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    expect(ignore.filter((l) => !l.startsWith('!'))).toEqual(['*']);
  });
});

describe('infra under plain tsx (as cdk.json runs it, not vitest)', () => {
  it('finds the repository root from import.meta.url (ESM has no __dirname)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const m = await import('./infra/service-function.ts'); console.log(m.REPO_ROOT)",
    ]);
    expect(stdout.trim()).toBe(process.cwd());
    expect(JSON.parse(fs.readFileSync('cdk.json', 'utf8')).app).toBe('npx tsx infra/main.ts');
  });
});
