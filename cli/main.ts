import { Command, InvalidArgumentError, Option } from 'commander';
import pkg from '../package.json' with { type: 'json' };

// The AWS SDK warns on Node < 22 that its releases after January 2027 will need Node 22: the SDK
// versions here are pinned exactly (package-lock.json), so the notice does not apply to this install.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Each command imports what it needs when it runs: from a build, a process then compiles only its
// own command's code (the worker's cold start does not pay for the local S3 / SQS stand-ins, the
// API's schemas or the converter).
const resolveModelDir = async (option: string | undefined) => (await import('./default-model.ts')).resolveModelDir(option);

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
const collect = (v: string, list: string[]) => [...list, v];
const bias = (v: string, map: Record<string, number>) => {
  const m = /^(\d+)=(-?\d+(\.\d+)?)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`--logit-bias takes ID=BIAS, got ${v}`);
  return { ...map, [m[1]]: Number(m[2]) };
};
const modelOption = () => new Option('--model <dir>', 'Hugging Face checkpoint or model bundle: a directory, s3://bucket/prefix/ or a Hub repo id (default: $ANOLE_MODEL, else a tiny random model)');

const program = new Command('anole')
  .description('Anole (Chameleon-7B fine-tune) on ONNX Runtime, from Hugging Face safetensors')
  .version(pkg.version, '-V, --version')
  // a mistyped option is one line (with commander's "did you mean"), not the whole help after it
  .configureOutput({ outputError: (str, write) => write(`anole: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (--help lists the options)\n`) });

program
  .command('forward')
  .description('logits of a batch of token ids: little-endian float32 [B, T, vocab]')
  .addOption(modelOption())
  .requiredOption('--input <file>', 'JSON {input_ids, attention_mask?, position_ids?}')
  .requiredOption('--output <file>', 'where to write the logits')
  .action(async (o) => (await import('./commands/forward.ts')).forwardCommand(await resolveModelDir(o.model), o));

program
  .command('encode-image')
  .description('image → VQ codes and image token ids')
  .addOption(modelOption())
  .requiredOption('--image <file>')
  .requiredOption('--output <file>', 'JSON {codes, token_ids}')
  .action(async (o) => (await import('./commands/images.ts')).encodeImageCommand(await resolveModelDir(o.model), o));

program
  .command('decode-image')
  .description('VQ codes or image token ids → PNG')
  .addOption(modelOption())
  .requiredOption('--codes <file>', 'JSON {codes} or {token_ids}')
  .requiredOption('--output <file>', 'PNG to write')
  .option('--raw <file>', 'also write float32 pixel values [3, H, W] before postprocessing')
  .action(async (o) => (await import('./commands/images.ts')).decodeImageCommand(await resolveModelDir(o.model), o));

program
  .command('preprocess')
  .description("the image processor alone (PIL's decoding and resize, centre crop, rescale, normalize)")
  .addOption(modelOption())
  .requiredOption('--image <file>')
  .requiredOption('--output <file>', 'pixel_values: little-endian float32 [3, H, W]')
  .option('--u8 <file>', 'also write the resized and cropped uint8 RGB image [H, W, 3]')
  .action(async (o) => void (await (await import('./commands/preprocess.ts')).preprocessCommand(await resolveModelDir(o.model), o)));

program
  .command('generate')
  .description('text, images, or both from a prompt with optional images')
  .addOption(modelOption())
  .requiredOption('--prompt <text>', 'the prompt; <image> marks where each --image goes')
  .option('--image <file>', 'an input image (repeatable)', collect, [])
  .option('--text-completion', 'append no end-of-turn separator (HF return_for_text_completion)')
  .addOption(new Option('--mode <mode>', 'what to generate').choices(['text', 'image', 'interleaved']).default('text'))
  .option('--max-new-tokens <n>', 'most new tokens', int('--max-new-tokens'))
  .option('--greedy', 'arg-max instead of sampling (blank-ish images: the model favours empty patches)')
  .option('--n <n>', 'sequences (e.g. images) per prompt', int('--n'))
  .option('--temperature <t>', 'default: text 1.0, image 0.7', num('--temperature'))
  .option('--top-p <p>', 'default 0.9', num('--top-p'))
  .option('--top-k <k>', 'default 0 (off)', int('--top-k'))
  .option('--repetition-penalty <p>', 'text tokens only; default 1.2', num('--repetition-penalty'))
  .option('--seed <n>', 'default: random, printed (and in result.json) so a result can be made again', int('--seed'))
  .option('--guidance-text <s>', 'image guidance, text scale; default 3.0 (1 = off)', num('--guidance-text'))
  .option('--guidance-image <s>', 'image guidance, image scale; default 1.2 (1 = off)', num('--guidance-image'))
  .option('--logit-bias <id=bias>', 'add bias to a token logit (repeatable)', bias, {})
  .option('--chunk-size <k>', 'decode steps per delivery of events (default: one image row)', int('--chunk-size'))
  .option('--stream', 'print the API\'s stream events (text, image_rows, image, done) as JSON lines on stdout')
  .option('--out <dir>', 'where result.json and the PNGs go (optional with --stream when only text is made)')
  .action(async (o) => (await import('./commands/generate.ts')).generateCommand(() => resolveModelDir(o.model), o));

program
  .command('init-model')
  .description('write a random-weight checkpoint in the Hugging Face layout')
  .requiredOption('--out <dir>')
  .option('--preset <name>', 'tiny | small', 'tiny')
  .option('--seed <n>', 'random seed', int('--seed'), 0)
  .option('--shards <n>', 'split the weights into n shard files', int('--shards'))
  .action(async (o) => (await import('./commands/init-model.ts')).initModelCommand(o));

program
  .command('convert')
  .description('build a model bundle (graphs, weights in the chosen dtype, tokenizer, manifest with hashes) from a Hugging Face checkpoint')
  .requiredOption('--from <dir|repo>', 'Hugging Face checkpoint directory, s3://bucket/prefix/ (cache in $ANOLE_S3_CACHE), or a Hub repo id (owner/name[@revision]; $HF_TOKEN, $HF_ENDPOINT, cache in $ANOLE_HUB_CACHE)')
  .requiredOption('--out <dir>', 'bundle directory to create, or s3://bucket/prefix/ to upload it to (manifest.json last)')
  .addOption(new Option('--dtype <dtype>', 'decoder weights').choices(['fp32', 'fp16', 'bf16', 'int8', 'int4']).default('fp32'))
  .addOption(new Option('--target <ep>', 'execution provider the graphs are built for').choices(['cpu', 'cuda']).default('cpu'))
  .addOption(new Option('--activations <type>', 'what a --target cuda int8/int4 bundle computes in (default fp16; bf16 if fp16 overflows)').choices(['fp16', 'bf16']))
  .option('--block-size <n>', 'int8/int4 quantization block size', int('--block-size'))
  .option('--accuracy-level <n>', 'MatMulNBits accuracy_level (default: 4 = int8 activations on CPU, 0 on CUDA)', int('--accuracy-level'))
  .option('--gpu-memory <GiB>', "memory of the GPU it will run on (--target cuda; default: this machine's GPU, else 22.5 = a 24 GB GPU)", num('--gpu-memory'))
  .option('--host-memory <GiB>', "host memory of the machine it will run on (default: this machine's)", num('--host-memory'))
  .action(async (o) => (await import('./commands/convert.ts')).convertCommand(o));

program
  .command('doctor')
  .description('what this machine can run: ONNX Runtime, its execution providers, the GPU, CUDA libraries; with --model its memory and whether it runs here (exit codes: 0 yes, 2 CUDA required but unavailable, 3 does not fit)')
  .option('--model <dir>', 'a model to check (directory, s3://bucket/prefix/ or Hub repo id)')
  .option('--run', 'also run a few decode steps with ONNX Runtime profiling: nodes per provider, Memcpy nodes, tokens/s, peak memory')
  .option('--steps <n>', 'decode steps of --run (default 32)', int('--steps'))
  .action(async (o) => (await import('./commands/doctor.ts')).doctorCommand(o.model ? await resolveModelDir(o.model) : undefined, o));
program.command('worker').description('the queue worker (sidecar): jobs from SQS, results to S3; configured by the environment').action(async () => void (await import('../sidecar/worker/main.ts')));
program.command('serve').description('the whole service locally: S3 and SQS stand-ins, the worker, the API and playground on $PORT (default 8787)').action(async () => (await import('./commands/serve.ts')).serveCommand());
program.command('bench').description('time the random tiny and small models (last stdout line: JSON)').option('--preset <names>', 'comma-separated presets', 'tiny,small').action(async (o) => (await import('../bench/run-bench.ts')).runBench({ presets: o.preset.split(',') }));

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // one clear line on stderr and a non-zero exit, never a stack trace for a user error
  process.stderr.write(`anole: ${(e as Error).message}\n`);
  if (process.env.ANOLE_DEBUG) console.error(e);
  process.exitCode = 1;
}
