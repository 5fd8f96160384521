/** A TypeScript binding to ONNX Runtime's C API (the subset the engine needs); see docs/ort-capi.md. */
export { ORT_API_VERSION, SLOTS, type CallName } from './api-table.ts';
export { checkVersion, libraryPath, ortLibrary, WRITTEN_FOR, type OrtLibrary } from './library.ts';
export { OrtCallError } from './status.ts';
export { Env, sharedEnv, type LogLevel } from './env.ts';
export { SessionOptions, type GraphOptimization, type SessionOptionsConfig } from './session-options.ts';
export { appendCudaProvider, cudaProviderOptionsString, type CudaProviderOptions } from './cuda-provider.ts';
export { Session, type TensorInfo } from './session.ts';
export { MemoryInfo, cpuMemoryInfo, type AllocatorKind, type MemType } from './memory.ts';
export { Allocator } from './allocator.ts';
export { ELEMENT_TYPES, type ElementType } from './element-type.ts';
export { Value } from './value.ts';
export { RunOptions } from './run-options.ts';
export { IoBinding } from './io-binding.ts';
