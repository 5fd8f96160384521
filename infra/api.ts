import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantPrefixes } from './bucket-access.ts';
import { ENV, KEYS } from './config.ts';
import type { ModelLocation } from './model-location.ts';
import { NATIVE_MODULES, ServiceFunction } from './service-function.ts';
import type { AnoleSettings } from './settings.ts';

/** The API's Lambda entry: functions/lambda.ts (`handler = streamHandle(app)`) behind the model-files step. */
export const API_ENTRY = 'infra/handlers/api-entry.ts';

export interface ApiProps {
  settings: AnoleSettings;
  bucket: s3.IBucket;
  queue: sqs.IQueue;
  model: ModelLocation;
  /** Defaults to API_ENTRY. */
  entry?: string;
}

/**
 * The Hono API on Lambda behind a Function URL in RESPONSE_STREAM mode (SSE, and responses up to
 * 200 MB; API Gateway's HTTP API cannot stream and caps requests at 30 s). The function runs up to
 * 15 minutes, enough for Prefer: wait, the OpenAI shims and a stream; it bills only per request.
 *
 * Auth, by `anole:apiAuth`:
 *   iam       the URL accepts only SigV4-signed calls from principals given the ApiCallers policy;
 *             the app's own keys stay off (the Authorization header carries the signature)
 *   api-keys  the URL is open and the app checks Bearer keys from a Secrets Manager secret, for
 *             clients that cannot sign (OpenAI SDKs)
 */
export class Api extends Construct {
  readonly fn: lambda.IFunction;
  readonly url: lambda.FunctionUrl;
  /** iam mode: attach to the users and roles that may call the API. */
  readonly callersPolicy?: iam.ManagedPolicy;
  /** api-keys mode: comma-separated keys (one generated; add more with put-secret-value and a redeploy). */
  readonly apiKeys?: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const { settings } = props;
    const iamAuth = settings.apiAuth === 'iam';

    if (!iamAuth) {
      this.apiKeys = new secretsmanager.Secret(this, 'ApiKeys', {
        description: 'Anole API: comma-separated Bearer keys',
        generateSecretString: { passwordLength: 40, excludePunctuation: true, includeSpace: false },
      });
      Validations.of(this.apiKeys).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason: 'Clients hold these keys; keys are added and retired by hand (README: "Deploying to AWS"), since a scheduled rotation would lock every client out.',
      });
    }

    const handler = new ServiceFunction(this, 'Handler', {
      entry: props.entry ?? API_ENTRY,
      description: 'Anole API (Hono, response streaming)',
      environment: {
        ...apiEnvironment(props),
        // Resolved by CloudFormation at deploy time; the value never appears in the template.
        ...(this.apiKeys ? { [ENV.apiKeys]: this.apiKeys.secretValue.unsafeUnwrap() } : {}),
      },
      // sharp decodes and resizes up to 20 MB images; 1769 MB is one full vCPU.
      memorySize: 1769,
      // an open URL (api-keys mode) bounds what anyone on the internet can make it run at once, and bill
      ...(iamAuth ? {} : { reservedConcurrentExecutions: settings.apiConcurrency }),
      timeout: Duration.minutes(15),
      logRetentionDays: settings.logRetentionDays,
      nodeModules: NATIVE_MODULES,
      // GET / serves the playground: the bundle has no esbuild nor the page's sources, so the page
      // is built now and shipped beside index.mjs (functions/playground/prebuilt-page.ts)
      afterBundling: (outputDir) => [`npx tsx functions/playground/prebuild-page.ts "${outputDir}"`],
    });
    const fn = handler.fn;
    this.fn = fn;
    grantApiAccess(fn, handler.role, props);

    this.url = fn.addFunctionUrl({
      authType: iamAuth ? lambda.FunctionUrlAuthType.AWS_IAM : lambda.FunctionUrlAuthType.NONE,
      invokeMode: lambda.InvokeMode.RESPONSE_STREAM,
    });

    if (iamAuth) {
      // What FunctionUrl.grantInvokeUrl grants a principal, as a policy anyone's principal can be given:
      // the URL invocation, and the function invocation when it comes through the URL.
      this.callersPolicy = new iam.ManagedPolicy(this, 'ApiCallers', {
        description: 'Anole API: may call the Function URL (attach to the users and roles that use the API)',
        statements: [
          new iam.PolicyStatement({
            actions: ['lambda:InvokeFunctionUrl'],
            resources: [fn.functionArn],
            conditions: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
          }),
          new iam.PolicyStatement({
            actions: ['lambda:InvokeFunction'],
            resources: [fn.functionArn],
            conditions: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } },
          }),
        ],
      });
    }
  }
}

/** What the API process reads from its environment (the request intake runs the same app). */
export function apiEnvironment(props: Pick<ApiProps, 'bucket' | 'queue' | 'model' | 'settings'>): Record<string, string> {
  return {
    [ENV.bucket]: props.bucket.bucketName,
    [ENV.queueUrl]: props.queue.queueUrl,
    [ENV.model]: props.model.uri,
    // the workers' cache slots' length: a job longer than that is refused at creation
    ...(props.settings.maxContext ? { [ENV.maxContext]: String(props.settings.maxContext) } : {}),
  };
}

/**
 * The API's reach, by key prefix: it reads uploads and outputs (for presigned GETs and b64 answers),
 * writes prepared inputs, jobs, prediction records, owner markers and idempotency records, signs
 * upload PUTs, reads the model's config and tokenizer, and sends job pointers to the queue.
 */
export function grantApiAccess(fn: lambda.IFunction, role: iam.IRole, props: Pick<ApiProps, 'bucket' | 'queue' | 'model'>): void {
  const { bucket, queue, model } = props;
  grantPrefixes(
    fn,
    role,
    bucket,
    {
      read: [KEYS.uploads, KEYS.outputs, KEYS.predictions, KEYS.owners, KEYS.idempotency],
      write: [KEYS.uploads, KEYS.inputs, KEYS.jobs, KEYS.predictions, KEYS.owners, KEYS.idempotency],
      delete: [KEYS.idempotency],
    },
    'the API prepares inputs and jobs, keeps prediction records, owner listings and idempotency records, and presigns upload and output URLs',
  );
  model.grantRead(fn, role);
  queue.grantSendMessages(fn);
}
