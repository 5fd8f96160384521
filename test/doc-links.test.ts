import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { brokenLinks, commentsOf, markdownLinks, readTree, type Tree } from './doc-links.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** An in-memory repository: `texts` are scanned, `others` only exist. */
function tree(texts: Record<string, string>, others: string[] = []): Tree {
  return { paths: new Set([...Object.keys(texts), ...others]), texts: new Map(Object.entries(texts)) };
}

const MODEL_DOC = '# The model\n\n## 1. Configuration\n\n### 1.1 The config\n\n## 2. Decoder\n\n- **Weights** (how they are drawn)\n';

describe('the doc-link scanner', () => {
  it('names a comment citing a markdown file the repository lacks, with its file and line', () => {
    const source = ['const a = 1;', '/**', ' * The BOS quirk (anole' + '-model.md §1.1).', ' */', 'export const b = 2; // see serverless' + '.md'].join('\n');
    expect(brokenLinks(tree({ 'model/config.ts': source, 'docs/model.md': MODEL_DOC }))).toEqual([
      { file: 'model/config.ts', line: 3, name: 'anole-model.md', why: 'no such file in the repository' },
      { file: 'model/config.ts', line: 5, name: 'serverless.md', why: 'no such file in the repository' },
    ]);
  });

  it('names a docs/ path that is not there, and a folder-qualified markdown name that resolves nowhere', () => {
    const source = '// the engine (docs/engine' + '-v3.md), the brief (briefs/service' + '-common.md), docs/model.md\n';
    expect(brokenLinks(tree({ 'sidecar/x.ts': source, 'docs/model.md': MODEL_DOC })).map((b) => b.name)).toEqual(['docs/engine-v3.md', 'briefs/service-common.md']);
  });

  it('checks the § sections and quoted headings cited after an existing doc, also across a wrapped block comment', () => {
    const source = [
      '/**',
      ' * Shapes (docs/model.md',
      ' * §1.1, §2.10). Init (docs/model.md, "Weights"); order (docs/model.md, "Sampling order").',
      ' */',
    ].join('\n');
    expect(brokenLinks(tree({ 'sidecar/x.ts': source, 'docs/model.md': MODEL_DOC }))).toEqual([
      { file: 'sidecar/x.ts', line: 2, name: 'docs/model.md §2.10', why: 'docs/model.md has no heading numbered 2.10' },
      { file: 'sidecar/x.ts', line: 3, name: 'docs/model.md "Sampling order"', why: 'docs/model.md has no heading "Sampling order"' },
    ]);
  });

  it('reads comments only in code: strings, template literals and regular expressions are not citations', () => {
    const source = [
      "const name = 'gone" + ".md'; const re = /\\/\\/ gone" + "2.md/;",
      'const t = `docs/gone' + '3.md`; // docs/model.md §1',
    ].join('\n');
    expect(brokenLinks(tree({ 'cli/x.ts': source, 'docs/model.md': MODEL_DOC }))).toEqual([]);
    expect(commentsOf('cli/x.ts', source).map((c) => c.text.trim())).toEqual(['docs/model.md §1']);
  });

  it('reads markdown and other text files whole, leaves URLs alone, and resolves beside the file or from the root', () => {
    const readme = [
      'See [the notes](docs/model.md) and ../../README.md, https://github.com/microsoft/onnxruntime/blob/main/docs/OperatorKernels.md,',
      'and [a brief](reference/anole' + '-model.md).',
    ].join('\n');
    const dockerfile = '# measured in docs/bench' + 'marks-old.md\nFROM node:22\n';
    expect(
      brokenLinks(tree({ 'test/fixtures/README.md': readme, 'sidecar/Dockerfile': dockerfile, 'docs/model.md': MODEL_DOC }, ['README.md'])),
    ).toEqual([
      { file: 'test/fixtures/README.md', line: 2, name: 'reference/anole-model.md', why: 'no such file in the repository' },
      { file: 'sidecar/Dockerfile', line: 1, name: 'docs/benchmarks-old.md', why: 'no such file in the repository' },
    ]);
  });

  it('lists a markdown file’s relative link targets, without anchors or URLs', () => {
    expect(markdownLinks('[a](docs/a.md) [b](docs/b.md#x) [c](https://example.com/c.md) [d](#top)')).toEqual(['docs/a.md', 'docs/b.md']);
  });
});

describe('this repository', () => {
  const repo = readTree(ROOT);

  it('names only docs it holds, with sections and headings they have (comments of code, markdown and other text files)', () => {
    expect(repo.texts.size).toBeGreaterThan(300);
    expect(brokenLinks(repo).map((b) => `${b.file}:${b.line}: ${b.name} (${b.why})`)).toEqual([]);
  });

  it("README.md's links resolve, its links into docs/ among them", () => {
    const links = markdownLinks(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    expect(links.filter((l) => l.startsWith('docs/')).length).toBeGreaterThan(3);
    expect(links.filter((l) => !fs.existsSync(path.join(ROOT, l)))).toEqual([]);
  });
});
