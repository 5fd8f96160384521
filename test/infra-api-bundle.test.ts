import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { API_MODEL_FILES } from '../infra/handlers/model-files.ts';
import { PREBUILT_PAGE_FILE } from '../functions/playground/prebuilt-page.ts';
import { FIXTURE_MODEL } from './api-harness.ts';
import { BUNDLE_LAMBDAS, functionAssetDir, synthAnole, type Synthesized } from './infra-synth.ts';
import type { FunctionUrlResponse } from './lambda-runtime.ts';

/**
 * The API Lambda's code as `cdk synth` stages it (esbuild bundle, native modules, command hooks),
 * run outside the repository the way the Lambda runtime runs it: the handler module loaded from
 * the asset directory in a process of its own, with the function's environment from the template
 * (its bucket and queue references pointed at the local S3 and SQS, where the model's small files
 * are put as on AWS). Only this file bundles (≈15 s); the other infra tests synthesize without it.
 */
let synth: Synthesized;
let stack: LocalStack;
let apiLogicalId: string;
let assetDir: string;
let functionEnv: Record<string, string>;
let lambdaTmp: string;

beforeAll(async () => {
  stack = await startLocalStack();
  synth = synthAnole(BUNDLE_LAMBDAS);
  // the function behind the Function URL
  const [url] = Object.values(synth.resources('AWS::Lambda::Url'));
  apiLogicalId = url.Properties.TargetFunctionArn['Fn::GetAtt'][0];
  assetDir = functionAssetDir(synth, apiLogicalId);
  functionEnv = resolveEnvironment(synth.resources('AWS::Lambda::Function')[apiLogicalId].Properties.Environment.Variables);

  const model = new URL(functionEnv.ANOLE_MODEL);
  const store = new S3BlobStore(createS3Client(stack.s3), model.hostname);
  for (const name of API_MODEL_FILES) await store.put(model.pathname.slice(1) + name, fs.readFileSync(path.join(FIXTURE_MODEL, name)), 'application/json');
  store.s3.destroy();
  lambdaTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-lambda-tmp-'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (synth) fs.rmSync(synth.outdir, { recursive: true, force: true });
  if (lambdaTmp) fs.rmSync(lambdaTmp, { recursive: true, force: true });
});

/** The template's environment values, with Refs to the bucket and the queue resolved to the local ones. */
function resolveEnvironment(variables: Record<string, unknown>): Record<string, string> {
  const types = Object.fromEntries(Object.entries(synth.template.toJSON().Resources as Record<string, { Type: string }>).map(([id, r]) => [id, r.Type]));
  const local: Record<string, string> = { 'AWS::S3::Bucket': stack.s3.bucket, 'AWS::SQS::Queue': stack.queue.queueUrl };
  const resolve = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const v = value as { Ref?: string; 'Fn::Join'?: [string, unknown[]] };
    if (v.Ref && local[types[v.Ref]]) return local[types[v.Ref]];
    if (v['Fn::Join']) return v['Fn::Join'][1].map(resolve).join(v['Fn::Join'][0]);
    throw new Error(`no local value for ${JSON.stringify(value)}`);
  };
  return Object.fromEntries(Object.entries(variables).map(([name, value]) => [name, resolve(value)]));
}

/** One Function URL request to the bundled handler, in a child process with the function's environment. */
async function invokeBundled(method: string, urlPath: string): Promise<FunctionUrlResponse> {
  const { Handler } = synth.resources('AWS::Lambda::Function')[apiLogicalId].Properties as { Handler: string };
  const [file, exportName] = Handler.split('.');
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/lambda-child.ts', path.join(assetDir, `${file}.mjs`), exportName, method, urlPath], {
    // what Lambda gives any function (a region, a writable /tmp), the local endpoints and keys, then the function's own
    env: { PATH: process.env.PATH, TMPDIR: lambdaTmp, ...stack.env, ...functionEnv },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as FunctionUrlResponse;
}

describe('the bundled API Lambda', () => {
  it('carries the prebuilt playground page and neither esbuild nor the page sources', () => {
    expect(fs.existsSync(path.join(assetDir, PREBUILT_PAGE_FILE))).toBe(true);
    const bundle = fs.readFileSync(path.join(assetDir, 'index.mjs'), 'utf8');
    expect(bundle).not.toMatch(/esbuild/i);
    expect(fs.readdirSync(path.join(assetDir, 'node_modules'))).not.toContain('esbuild');
    expect(fs.readdirSync(assetDir).filter((f) => /\.(ts|css|html)$/.test(f))).toEqual([]);
  });

  it('holds no ONNX Runtime, koffi or worker code: not bundled (its source map lists every input), not installed beside it', () => {
    const bundle = fs.readFileSync(path.join(assetDir, 'index.mjs'), 'utf8');
    const { sources } = JSON.parse(fs.readFileSync(path.join(assetDir, 'index.mjs.map'), 'utf8')) as { sources: string[] };
    const repoFiles = sources.map((s) => path.relative(process.cwd(), path.resolve(assetDir, s)));
    // the map is the real input list: the API's own files and its bundled packages are in it
    expect(repoFiles).toContain('functions/api/app.ts');
    expect(repoFiles.some((f) => f.startsWith('node_modules/hono/'))).toBe(true);
    const engine = /(^|\/)node_modules\/(onnxruntime-node|onnxruntime-common|onnxruntime-web|koffi)\//;
    expect(repoFiles.filter((f) => engine.test(f) || /^(sidecar|cli)\//.test(f))).toEqual([]);
    expect(bundle).not.toMatch(/onnxruntime|koffi/i);
    // installed beside it: the native packages the API asks for (sharp, tokenizers) and their own dependencies only
    const installed = fs.readdirSync(path.join(assetDir, 'node_modules')).flatMap((d) => (d.startsWith('@') ? fs.readdirSync(path.join(assetDir, 'node_modules', d)).map((n) => `${d}/${n}`) : [d]));
    expect(installed).toEqual(expect.arrayContaining(['sharp', 'tokenizers']));
    expect(installed.filter((d) => /onnxruntime|koffi/.test(d))).toEqual([]);
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    console.log(`API Lambda bundle: index.mjs ${mib(bundle.length)}, node_modules ${mib(directoryBytes(path.join(assetDir, 'node_modules')))} (${installed.join(', ')})`);
  });

  it('answers GET / with the playground page and its CSP, run from the asset directory with the function environment', async () => {
    const res = await invokeBundled('GET', '/');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('<title>Anole playground</title>');
    const config = JSON.parse(res.body.match(/<script type="application\/json" id="config">(.*?)<\/script>/s)![1]);
    expect(config.keysOn).toBe(false);
    expect(config.imageToken).toBe('<image>');

    const csp = res.headers['content-security-policy'];
    expect(csp).toContain("default-src 'none'");
    // the CSP's hashes are those of what the page inlines (the prebuilt file's, computed at bundling)
    const script = res.body.match(/<script>(.*?)<\/script>/s)![1];
    const style = res.body.match(/<style>(.*?)<\/style>/s)![1];
    const sha = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    expect(csp).toContain(`script-src ${sha(script)}`);
    expect(csp).toContain(`style-src ${sha(style)}`);
    // the bucket's origin (presigned uploads and previews): the local S3 here, S3 itself on AWS
    expect(csp).toContain(`connect-src 'self' ${new URL(stack.s3.endpoint!).origin}`);
  });
});

function directoryBytes(dir: string): number {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).reduce((sum, e) => (e.isFile() ? sum + fs.statSync(path.join(e.parentPath, e.name)).size : sum), 0);
}
