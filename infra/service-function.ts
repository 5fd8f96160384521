import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The repository root (this file is infra/service-function.ts; under ESM there is no __dirname). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Native packages esbuild cannot bundle: installed next to the bundle from the lockfile instead. */
export const NATIVE_MODULES = ['sharp', 'tokenizers'] as const;

export interface ServiceFunctionProps {
  /** Entry file, relative to the repository root; it exports `handler`. */
  entry: string;
  description: string;
  environment: Record<string, string>;
  memorySize: number;
  timeout: Duration;
  logRetentionDays: number;
  /** Native packages the entry imports (a subset of NATIVE_MODULES). */
  nodeModules?: readonly string[];
  /** Shell commands (run from the repository root) that add files to the bundle in outputDir. */
  afterBundling?: (outputDir: string) => string[];
  /** Asynchronously invoked functions: where an event goes after the retries fail. */
  deadLetterQueue?: sqs.IQueue;
  /** Reserved concurrency: the most instances at once (and what the account's other functions cannot use). */
  reservedConcurrentExecutions?: number;
}

/**
 * A Lambda function of this service: TypeScript bundled by the local esbuild into one ES module
 * (no Docker), Node 22, its own log group with a retention. Native packages (sharp, tokenizers) are
 * installed beside the bundle with `npm ci` from the project lockfile; `prefer-offline` lets that
 * come from the npm cache, so `cdk synth` works without network once `npm ci` has run.
 */
export class ServiceFunction extends Construct {
  readonly fn: nodejs.NodejsFunction;
  /** The function's own role: its log group, then whatever the stack grants (nothing from managed policies). */
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetentionDays, removalPolicy: RemovalPolicy.DESTROY });
    // Instead of AWSLambdaBasicExecutionRole (logs:* on every log group): write to this log group only.
    this.role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: props.description });
    logGroup.grantWrite(this.role);
    this.fn = new nodejs.NodejsFunction(this, 'Function', {
      entry: path.join(REPO_ROOT, props.entry),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      // nodejs20.x is deprecated (2026-04-30); 22 is what the worker image runs too.
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      description: props.description,
      memorySize: props.memorySize,
      timeout: props.timeout,
      environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
      logGroup,
      role: this.role,
      ...(props.deadLetterQueue ? { deadLetterQueue: props.deadLetterQueue, retryAttempts: 2 } : {}),
      ...(props.reservedConcurrentExecutions ? { reservedConcurrentExecutions: props.reservedConcurrentExecutions } : {}),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        // Bundled CommonJS dependencies call require(); give the ES module one.
        banner: "import { createRequire as anoleCreateRequire } from 'node:module'; const require = anoleCreateRequire(import.meta.url);",
        minify: true,
        sourceMap: true,
        forceDockerBundling: false,
        nodeModules: [...(props.nodeModules ?? [])],
        // Bundle the AWS SDK too (CDK leaves it to the runtime's copy by default): the code is tested with
        // the lockfile's versions, conditional writes included, not with whatever the runtime ships.
        externalModules: [],
        // Lambda's platform, whatever machine deploys: npm picks sharp's linux-x64 glibc binaries.
        environment: { npm_config_prefer_offline: 'true', npm_config_os: 'linux', npm_config_cpu: 'x64', npm_config_libc: 'glibc' },
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          // tokenizers ships every platform's binary in one package (64 MB): keep Lambda's.
          afterBundling: (_inputDir, outputDir) => [
            ...((props.nodeModules ?? []).includes('tokenizers')
              ? [`find "${outputDir}/node_modules/tokenizers" -name 'tokenizers.*.node' ! -name 'tokenizers.linux-x64-gnu.node' -delete`]
              : []),
            ...(props.afterBundling?.(outputDir) ?? []),
          ],
        },
      },
    });
    Validations.of(this.fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason: 'Node.js 22 on purpose: the worker image and the local toolchain run Node 22/20, and the service is tested there, not on 24.',
    });
  }
}
