import { createS3Client, s3SettingsFromEnv } from '../../contract/s3.ts';
import { ENV } from '../config.ts';
import { modelFilesDir } from './model-files.ts';

/**
 * The API Lambda's entry: functions/lambda.ts (Hono streamHandle), once ANOLE_MODEL names a local
 * directory. The stack gives the function the model bundle's s3:// URI; the config and tokenizer files
 * are copied to /tmp first, and only then is functions/lambda.ts loaded (it reads them at load time).
 */
const s3 = createS3Client(s3SettingsFromEnv(process.env));
process.env[ENV.model] = await modelFilesDir(process.env[ENV.model] ?? '', s3);
s3.destroy();

export const { handler } = await import('../../functions/lambda.ts');
