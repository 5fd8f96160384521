import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Validations, type App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { createAnoleApp } from '../infra/app.ts';
import type { AnoleStack } from '../infra/anole-stack.ts';

/**
 * The CDK app as `npx cdk synth` builds it (cdk.json's feature flags and context, then the test's
 * context on top), without AWS credentials or network. Two things differ, both for speed: Lambda
 * bundling is skipped (the `aws:cdk:bundling-stacks: []` context; pass BUNDLE_LAMBDAS to bundle as
 * `cdk synth` does, ≈15 s) and CDK's built-in CloudFormation schema validation is off (≈10–20 s per
 * synth here).
 */
export interface Synthesized {
  app: App;
  /** The cloud assembly directory (a fresh temporary one): remove it when done. */
  outdir: string;
  stack: AnoleStack;
  template: Template;
  /** Resources of one CloudFormation type, by logical id. */
  resources(type: string): Record<string, { Properties: Record<string, any>; DependsOn?: string[] }>;
}

/** Context that makes the synth bundle every Lambda function (esbuild, npm ci of native modules, command hooks). */
export const BUNDLE_LAMBDAS = { 'aws:cdk:bundling-stacks': ['**'] };

export function synthAnole(context: Record<string, unknown> = {}): Synthesized {
  const cdkJson = JSON.parse(fs.readFileSync('cdk.json', 'utf8')) as { context: Record<string, unknown> };
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cdk-'));
  const { app, stack } = createAnoleApp({
    context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [], ...context },
    outdir,
    builtinCloudFormationValidation: false,
  });
  const template = Template.fromStack(stack);
  return { app, outdir, stack, template, resources: (type) => template.findResources(type) as ReturnType<Synthesized['resources']> };
}

/** The directory CDK staged a Lambda function's code in (what it zips and uploads), by the function's logical id. */
export function functionAssetDir(s: Synthesized, logicalId: string): string {
  const key: unknown = s.resources('AWS::Lambda::Function')[logicalId]?.Properties.Code?.S3Key;
  if (typeof key !== 'string') throw new Error(`${logicalId}: no Lambda function with code in an S3 asset`);
  const manifest = JSON.parse(fs.readFileSync(path.join(s.outdir, `${s.stack.artifactId}.assets.json`), 'utf8')) as {
    files: Record<string, { source: { path: string } }>;
  };
  const asset = manifest.files[key.replace(/\.zip$/, '')];
  if (!asset) throw new Error(`${logicalId}: asset ${key} is not in the manifest`);
  return path.join(s.outdir, asset.source.path);
}

export interface NagAudit {
  /** `path rule[finding]` of every AwsSolutions finding with acknowledgments ignored. */
  findings: string[];
  /** Findings that no acknowledgment covers (what `cdk synth` would fail on). */
  unacknowledged: string[];
  /** Acknowledgments (path, rule, reason) that match no finding under their construct. */
  unused: { path: string; id: string; reason: string }[];
  acknowledgments: { path: string; id: string; reason: string }[];
}

/**
 * cdk-nag's AWS Solutions pack over the stack, twice: as `cdk synth` runs it (acknowledgments
 * honoured), and with acknowledgments ignored, so that every acknowledgment can be matched to a
 * finding it actually silences (no stale or blanket suppressions).
 */
export function auditNag(stack: AnoleStack): NagAudit & { success: boolean } {
  const honoured = new AwsSolutionsChecks().validateScope(stack);
  const blind = new AwsSolutionsChecks() as unknown as { isAcknowledged: () => boolean; validateScope: AwsSolutionsChecks['validateScope'] };
  blind.isAcknowledged = () => false;
  const all = blind.validateScope(stack);
  const findings = all.violations.flatMap((v) => v.violatingResources.map((r) => ({ path: r.constructPath ?? '', rule: v.ruleName })));
  const unacknowledged = honoured.violations.flatMap((v) => v.violatingResources.map((r) => `${r.constructPath} ${v.ruleName}`));

  const acknowledgments = stack.node.findAll().flatMap((c: IConstruct) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, unknown>).map(([key, value]) => ({
          path: c.node.path,
          id: key.replace(/^annotation::/i, ''),
          reason: typeof value === 'string' ? value : JSON.stringify(value),
        })),
      )
      .filter((a) => a.id.startsWith('AwsSolutions-')),
  );
  const unused = acknowledgments.filter((a) => !findings.some((f) => f.rule === a.id && (f.path === a.path || f.path.startsWith(`${a.path}/`))));
  return { success: honoured.success, findings: findings.map((f) => `${f.path} ${f.rule}`), unacknowledged, unused, acknowledgments };
}
