import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadHubRepo, isHubRepoId } from '../sidecar/bundle/hub-download.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { startFakeHub, type FakeHub, type FakeHubFile } from './fake-hub-server.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const REPO = 'leloy/Anole-tiny-hf';
const TOKEN = 'hf_fixture_token';
const SHIPPED = ['config.json', 'generation_config.json', 'preprocessor_config.json', 'processor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
let hub: FakeHub;
let tmp: string;
const files: Record<string, FakeHubFile> = {};

beforeAll(async () => {
  for (const name of SHIPPED) files[name] = { content: fs.readFileSync(path.join(FIXTURE, name)), lfs: name.endsWith('.safetensors') || name === 'tokenizer.json' };
  hub = await startFakeHub(REPO, files, TOKEN);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-hub-'));
});
afterAll(async () => {
  await hub.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('Hub download (@huggingface/hub against a local server in the Hub layout)', () => {
  it('tells repo ids from directories', () => {
    expect(isHubRepoId('leloy/Anole-7b-v0.1-hf')).toBe(true);
    expect(isHubRepoId('test/fixtures')).toBe(false); // exists on disk
    expect(isHubRepoId('/abs/dir')).toBe(false);
  });

  it('refuses without the token of a gated repo', async () => {
    await expect(downloadHubRepo({ repo: REPO, cacheDir: tmp, hubUrl: hub.url, accessToken: 'hf_wrong' })).rejects.toThrow();
  });

  it('resumes a dropped download with a Range request, checks sizes and hashes, and converts the result', async () => {
    const cacheDir = path.join(tmp, 'cache');
    const size = files['model.safetensors'].content.length;
    hub.cutNext('model.safetensors', 5_000_000);
    await expect(downloadHubRepo({ repo: REPO, cacheDir, hubUrl: hub.url, accessToken: TOKEN })).rejects.toThrow();
    const dir = path.join(cacheDir, 'leloy--Anole-tiny-hf', 'main');
    const partial = fs.statSync(path.join(dir, 'model.safetensors.partial')).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(size);

    hub.requests.length = 0;
    const got = await downloadHubRepo({ repo: REPO, cacheDir, hubUrl: hub.url, accessToken: TOKEN });
    expect(got).toBe(dir);
    expect(hub.requests.some((r) => r.path.endsWith('/model.safetensors') && r.range === `bytes=${partial}-${size - 1}`)).toBe(true);
    for (const name of SHIPPED) expect(fs.readFileSync(path.join(dir, name)).equals(files[name].content)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.partial'))).toBe(false);

    // a second call downloads nothing (finished files are recorded)
    hub.requests.length = 0;
    await downloadHubRepo({ repo: REPO, cacheDir, hubUrl: hub.url, accessToken: TOKEN });
    expect(hub.requests.filter((r) => r.path.includes('/resolve/'))).toEqual([]);

    // and the download is a checkpoint like any other
    const bundle = path.join(tmp, 'bundle');
    await writeBundle({ from: got, out: bundle, precision: { dtype: 'int4', target: 'cpu' } });
    expect(openModel(bundle).checkpoint.config!.vocabSize).toBe(65536);
  });

  it('rejects a file whose bytes do not match the listed hash, naming it, and keeps nothing of it', async () => {
    const cacheDir = path.join(tmp, 'bad');
    const good = files['tokenizer_config.json'];
    const served = Buffer.from(good.content);
    served[10] ^= 1;
    files['tokenizer_config.json'] = { ...good, served };
    try {
      await expect(downloadHubRepo({ repo: REPO, cacheDir, hubUrl: hub.url, accessToken: TOKEN })).rejects.toThrow(/tokenizer_config\.json: downloaded \d+ bytes with sha1:[0-9a-f]{40}, the Hub lists/);
      const dir = path.join(cacheDir, 'leloy--Anole-tiny-hf', 'main');
      expect(fs.existsSync(path.join(dir, 'tokenizer_config.json'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'tokenizer_config.json.partial'))).toBe(false);
    } finally {
      files['tokenizer_config.json'] = good;
    }
  });

  it('anole convert --from a repo id downloads (HF_TOKEN, HF_ENDPOINT) and converts', async () => {
    const out = path.join(tmp, 'cli-bundle');
    const env = { ...process.env, HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url, ANOLE_HUB_CACHE: path.join(tmp, 'cli-cache'), ANOLE_MODEL: '' };
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/anole.js', 'convert', '--from', REPO, '--out', out, '--dtype', 'int8'], { env });
    expect(stdout.trim().split('\n').pop()).toBe(out);
    expect(fs.existsSync(path.join(tmp, 'cli-cache', 'leloy--Anole-tiny-hf', 'main', 'model.safetensors'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).precision.dtype).toBe('int8');
  });
});
