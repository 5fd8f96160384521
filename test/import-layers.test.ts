import { describe, expect, it } from 'vitest';
import { describeArrow, LAYER_RULES, readSources, wrongArrows } from './import-layers.ts';

// The layers hold: the API Lambda never loads the worker, the worker never loads the API, and what both use
// (model/, contract/) imports neither. Every .ts file of the layers is read, as it is now in the tree.

describe('import directions', () => {
  it('no file of functions/, sidecar/, model/, contract/, cli/ or infra/ imports against its layer', () => {
    const sources = readSources(process.cwd(), Object.keys(LAYER_RULES));
    // the walk found the tree: each layer has files, and the known cross-layer imports are among them
    for (const layer of Object.keys(LAYER_RULES)) expect([...sources.keys()].some((f) => f.startsWith(`${layer}/`)), layer).toBe(true);
    expect(sources.size).toBeGreaterThan(100);
    expect(wrongArrows(sources).map(describeArrow)).toEqual([]);
  });

  it('the checker finds each kind of import the wrong way, names file, line and import, and lets the right ones pass', () => {
    const files = new Map<string, string>([
      [
        'functions/api/bad.ts',
        [
          "import { a } from '../../contract/job.ts';", // allowed
          "import type { B } from '../../sidecar/worker/run-jobs.ts';", // import type
          "export { c } from '../../cli/default-model.ts';", // export from
          '// import { d } from "../../sidecar/engine/x.ts": a comment, not an import',
          "const s = \"import('../../sidecar/y.ts')\"; // a string, not an import",
          "const lazy = () => import('../../sidecar/engine/engine-thread.ts');", // dynamic import
          "import './local.ts';", // its own layer
          "import { Hono } from 'hono';", // a package
        ].join('\n'),
      ],
      ['model/config.ts', "import { x } from '../contract/job.ts';\nexport * from './vocabulary.ts';"],
      ['contract/job.ts', "import type { Y } from '../functions/api/deps.ts';\nimport { z } from '../model/config.ts';"],
      ['sidecar/worker/main.ts', "import { resolveModelDir } from '../../cli/default-model.ts';"],
      ['test/anything.ts', "import { x } from '../sidecar/worker/job-worker.ts';"], // not a layer: no rule
    ]);
    expect(wrongArrows(files).map(describeArrow)).toEqual([
      "functions/api/bad.ts:2 imports '../../sidecar/worker/run-jobs.ts' (functions/ → sidecar/)",
      "functions/api/bad.ts:3 imports '../../cli/default-model.ts' (functions/ → cli/)",
      "functions/api/bad.ts:6 imports '../../sidecar/engine/engine-thread.ts' (functions/ → sidecar/)",
      "model/config.ts:1 imports '../contract/job.ts' (model/ → contract/)",
      "contract/job.ts:1 imports '../functions/api/deps.ts' (contract/ → functions/)",
      "sidecar/worker/main.ts:1 imports '../../cli/default-model.ts' (sidecar/ → cli/)",
    ]);
  });
});
