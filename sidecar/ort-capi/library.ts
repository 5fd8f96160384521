import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import { nativeBindingDir } from '../onnx/session.ts'; // also turns ORT's telemetry off before the library starts
import { ORT_API_VERSION, SLOTS, type CallName } from './api-table.ts';
import { DECLARATIONS, OPAQUE_TYPES } from './declarations.ts';

/** A C function of the table, callable from JavaScript (pointers come and go as bigints). */
export type CFunction = (...args: unknown[]) => any;

export interface OrtLibrary {
  /** The file loaded: onnxruntime-node's own libonnxruntime.so.1, so the process has one ONNX Runtime. */
  path: string;
  /** GetVersionString(), e.g. "1.30.0". */
  version: string;
  /** The `const OrtApi *` table of ORT_API_VERSION. */
  api: bigint;
  /** Every call of api-table.ts, decoded from its slot with its declaration. */
  fn: Record<CallName, CFunction>;
}

/** The release ORT_API_VERSION came with (ORT 1.N ships API N). */
export const WRITTEN_FOR = `1.${ORT_API_VERSION}`;

/**
 * The version rule: a library at least as new as the API we wrote for is accepted (the table is
 * append-only, and GetApi(ORT_API_VERSION) hands out the layout of that version); an older one is refused,
 * since it lacks calls or would read slots that do not exist. Throws an Error naming the file.
 */
export function checkVersion(version: string, file: string): void {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  const why = `this binding was written for ORT API ${ORT_API_VERSION} (${WRITTEN_FOR}) and needs ONNX Runtime ${WRITTEN_FOR} or a newer 1.x`;
  if (!m) throw new Error(`${path.basename(file)} at ${file} reports version "${version}", which is not major.minor.patch; ${why}`);
  if (Number(m[1]) !== 1 || Number(m[2]) < ORT_API_VERSION) throw new Error(`${path.basename(file)} at ${file} is ${version}; ${why}`);
}

/** Where onnxruntime-node keeps the ONNX Runtime library it loads itself (Linux: the only platform served and tested). */
export function libraryPath(dir: string = nativeBindingDir()): string {
  if (process.platform !== 'linux') throw new Error(`ONNX Runtime C API: only Linux is supported (this is ${process.platform})`);
  return path.join(dir, 'libonnxruntime.so.1');
}

let loaded: OrtLibrary | undefined;

/** The process's one ONNX Runtime, loaded and checked on first use. */
export function ortLibrary(): OrtLibrary {
  loaded ??= load(libraryPath());
  return loaded;
}

function load(file: string): OrtLibrary {
  if (!fs.existsSync(file)) throw new Error(`ONNX Runtime C API: ${file} is missing (is onnxruntime-node installed?)`);
  const lib = koffi.load(file);
  const base = lib.func('void *OrtGetApiBase(void)')() as bigint | null;
  if (!base) throw new Error(`OrtGetApiBase: ${file} returned no API base`);
  // struct OrtApiBase { const OrtApi *(*GetApi)(uint32_t); const char *(*GetVersionString)(void); }
  const getApi = koffi.decode(koffi.decode(base, 0, 'void *'), declared('const void *OrtGetApi(uint32_t version)')) as CFunction;
  const getVersion = koffi.decode(koffi.decode(base, 8, 'void *'), declared('const char *OrtGetVersionString(void)')) as CFunction;
  const version = getVersion() as string;
  checkVersion(version, file);
  const api = getApi(ORT_API_VERSION) as bigint | null;
  if (!api) throw new Error(`GetApi(${ORT_API_VERSION}): ${file} (${version}) does not offer ORT API ${ORT_API_VERSION}; this binding was written for ${WRITTEN_FOR}`);
  for (const name of OPAQUE_TYPES) typeOnce(name, () => koffi.opaque(name));
  const fn = {} as Record<CallName, CFunction>;
  for (const name of Object.keys(SLOTS) as CallName[]) {
    const pointer = koffi.decode(api, SLOTS[name].index * 8, 'void *') as bigint | null;
    if (!pointer) throw new Error(`${name}: slot ${SLOTS[name].index} of the ORT API ${ORT_API_VERSION} table in ${file} is empty`);
    fn[name] = koffi.decode(pointer, declared(DECLARATIONS[name])) as CFunction;
  }
  return { path: file, version, api, fn };
}

/** A prototype type, declared once per process: koffi's type names outlive a re-imported module (vitest). */
function declared(prototype: string) {
  const name = /([A-Za-z_0-9]+)\s*\(/.exec(prototype)![1];
  return typeOnce(`OrtCapi_${name}`, () => koffi.proto(prototype.replace(`${name}(`, `OrtCapi_${name}(`)));
}

function typeOnce(name: string, make: () => unknown) {
  try {
    return koffi.type(name);
  } catch {
    return make() as ReturnType<typeof koffi.type>;
  }
}
