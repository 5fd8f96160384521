/**
 * The deployment's knobs, from CDK context (`cdk deploy -c anole:maxInstances=4`, or cdk.json) or from
 * props in code. Context arrives as strings from the command line and as JSON values from cdk.json, so
 * every value is parsed and checked here, once, with an error that names the key.
 */
import { parseS3Uri as parseContractS3Uri, type S3Location } from '../contract/s3-uri.ts';

export type ApiAuth = 'iam' | 'api-keys';

export interface AnoleSettings {
  /** GPU instance types, preferred first (a mixed-instances ASG falls back when one has no capacity). */
  instanceTypes: string[];
  /** The ceiling of the Auto Scaling group and of the worker service (one GPU task per instance). */
  maxInstances: number;
  /** `s3://bucket/prefix/` of the model bundle; unset = `models/anole/` in the stack's own bucket. */
  modelUri?: string;
  /** Minutes with an empty queue before the workers scale to zero (their instances follow). */
  idleMinutes: number;
  /** Stopped, pre-initialised instances kept in an ASG warm pool (0 = none). Idle cost: their EBS volumes. */
  warmPoolSize: number;
  /**
   * 'iam': the Function URL takes SigV4-signed calls only (attach the ApiCallers policy to who may call).
   * 'api-keys': the URL is open and the app checks Bearer keys kept in Secrets Manager (for OpenAI clients).
   */
  apiAuth: ApiAuth;
  /** api-keys mode: the API function's reserved concurrency, the most requests the open URL runs at once. */
  apiConcurrency: number;
  /** The longest a job may run; the queue's visibility timeout sits above it. */
  maxJobMinutes: number;
  /**
   * Deliveries of a job before its message moves to the dead-letter queue (3–10). Workers run a job on
   * one fewer, and fail it on the last: a crash that also costs a delivery (a dead worker's pending
   * long poll may still take the message) must not exhaust the budget.
   */
  maxReceiveCount: number;
  /**
   * Jobs one worker takes at a time (its ANOLE_BATCH_SIZE); the backlog per task the scaling steps count with.
   * Each job's KV cache at the full context is 6 GiB in fp16 for a 7B model (three guided rows), so a 24 GB
   * GPU holds one (sidecar/bundle/memory-estimate.ts; the worker refuses a batch that does not fit).
   */
  jobsPerTask: number;
  /**
   * Tokens a job may use (prompt + max_new_tokens), when shorter than the model's context: the workers'
   * cache slots are this long (less memory per job) and the API refuses longer jobs at creation
   * (ANOLE_MAX_CONTEXT for both). Default: the model's max_position_embeddings.
   */
  maxContext?: number;
  /** An alarm fires when the oldest job has waited this long (default: the longest job plus a cold start). */
  jobAgeAlarmMinutes: number;
  logRetentionDays: number;
  /** Days before outputs (PNGs, previews, events) and finished prediction records expire. */
  outputsExpireDays: number;
  /** Days before user uploads and request objects expire. */
  uploadsExpireDays: number;
  /** Root volume of each GPU instance: the image layers and the model bundle live here. */
  volumeGiB: number;
  /**
   * The volume's read/write throughput in MiB/s (gp3: 125, its baseline, to 2000). The model loads at
   * this speed on every cold start: a 7B int4 bundle (about 4 GiB) takes 30 s at 125 MiB/s, 4 s at 1000.
   * Above the baseline it is billed per MiB/s-month for as long as the volume exists, warm pool included.
   */
  volumeThroughputMiBps: number;
  /** Memory reserved for the worker task (soft limit; the container may use what the instance has). */
  workerMemoryMiB: number;
  /** Email for alarm notifications (optional; the alarms exist either way). */
  alarmEmail?: string;
}

export const DEFAULT_SETTINGS: AnoleSettings = {
  instanceTypes: ['g6.xlarge'],
  maxInstances: 2,
  idleMinutes: 15,
  warmPoolSize: 0,
  apiAuth: 'iam',
  apiConcurrency: 20,
  maxJobMinutes: 30,
  maxReceiveCount: 5,
  jobsPerTask: 1,
  jobAgeAlarmMinutes: 45,
  logRetentionDays: 30,
  outputsExpireDays: 30,
  uploadsExpireDays: 1,
  volumeGiB: 200,
  volumeThroughputMiBps: 125,
  workerMemoryMiB: 12 * 1024,
};

/** Context keys are the setting names under this prefix: `anole:instanceTypes`, `anole:maxInstances`, … */
export const CONTEXT_PREFIX = 'anole:';

export class SettingsError extends Error {}

/** Settings from a context lookup, over the defaults; throws SettingsError naming the bad key. */
export function settingsFromContext(get: (key: string) => unknown): AnoleSettings {
  const raw = (name: keyof AnoleSettings) => get(CONTEXT_PREFIX + name);
  const s: AnoleSettings = { ...DEFAULT_SETTINGS };
  const int = (name: keyof AnoleSettings, min: number, max: number): number | undefined => {
    const v = raw(name);
    if (v === undefined || v === '') return undefined;
    const n = typeof v === 'number' ? v : Number(String(v));
    if (!Number.isInteger(n) || n < min || n > max) throw new SettingsError(`${CONTEXT_PREFIX}${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return n;
  };
  const str = (name: keyof AnoleSettings): string | undefined => {
    const v = raw(name);
    return v === undefined || v === '' ? undefined : String(v);
  };

  const types = raw('instanceTypes');
  if (types !== undefined && types !== '') {
    const list = (Array.isArray(types) ? types.map(String) : String(types).split(',')).map((t) => t.trim()).filter(Boolean);
    for (const t of list) {
      if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(t)) throw new SettingsError(`${CONTEXT_PREFIX}instanceTypes: "${t}" is not an EC2 instance type like g6.xlarge`);
    }
    if (list.length === 0) throw new SettingsError(`${CONTEXT_PREFIX}instanceTypes is empty`);
    s.instanceTypes = list;
  }
  s.maxInstances = int('maxInstances', 1, 100) ?? s.maxInstances;
  s.idleMinutes = int('idleMinutes', 1, 24 * 60) ?? s.idleMinutes;
  s.warmPoolSize = int('warmPoolSize', 0, 100) ?? s.warmPoolSize;
  s.maxJobMinutes = int('maxJobMinutes', 1, 12 * 60) ?? s.maxJobMinutes;
  s.maxReceiveCount = int('maxReceiveCount', 3, 10) ?? s.maxReceiveCount;
  s.jobsPerTask = int('jobsPerTask', 1, 64) ?? s.jobsPerTask;
  s.maxContext = int('maxContext', 2, 1 << 20) ?? s.maxContext;
  s.apiConcurrency = int('apiConcurrency', 1, 1000) ?? s.apiConcurrency;
  s.jobAgeAlarmMinutes = int('jobAgeAlarmMinutes', 1, 24 * 60) ?? s.jobAgeAlarmMinutes;
  s.logRetentionDays = int('logRetentionDays', 1, 3653) ?? s.logRetentionDays;
  s.outputsExpireDays = int('outputsExpireDays', 1, 3650) ?? s.outputsExpireDays;
  s.uploadsExpireDays = int('uploadsExpireDays', 1, 3650) ?? s.uploadsExpireDays;
  s.volumeGiB = int('volumeGiB', 30, 16384) ?? s.volumeGiB;
  s.volumeThroughputMiBps = int('volumeThroughputMiBps', 125, 2000) ?? s.volumeThroughputMiBps;
  s.workerMemoryMiB = int('workerMemoryMiB', 1024, 2 * 1024 * 1024) ?? s.workerMemoryMiB;

  const auth = str('apiAuth');
  if (auth !== undefined) {
    if (auth !== 'iam' && auth !== 'api-keys') throw new SettingsError(`${CONTEXT_PREFIX}apiAuth must be "iam" or "api-keys", got "${auth}"`);
    s.apiAuth = auth;
  }
  const modelUri = str('modelUri');
  if (modelUri !== undefined) {
    parseS3Uri(modelUri, `${CONTEXT_PREFIX}modelUri`);
    s.modelUri = modelUri;
  }
  const email = str('alarmEmail');
  if (email !== undefined) {
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new SettingsError(`${CONTEXT_PREFIX}alarmEmail is not an email address: "${email}"`);
    s.alarmEmail = email;
  }
  return s;
}

/** contract/s3-uri.ts's parseS3Uri, failing with a SettingsError (the deploy reports those by key). */
export function parseS3Uri(uri: string, what = 'S3 URI'): S3Location {
  try {
    return parseContractS3Uri(uri, what);
  } catch (e) {
    throw new SettingsError((e as Error).message);
  }
}
