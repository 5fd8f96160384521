/**
 * Where each C call we use sits in ONNX Runtime's function table (`struct OrtApi`), and the API version
 * that added it. The table is append-only, so its order is a fact of the public header
 * (microsoft/onnxruntime include/onnxruntime/core/session/onnxruntime_c_api.h): slot N is the N-th
 * member of `struct OrtApi`, counting from 0. The indices were counted from the header of API 30 and
 * checked against the `static_assert(offsetof(OrtApi, X) / sizeof(void*) == N)` lines in
 * onnxruntime/core/session/onnxruntime_c_api.cc (the last slot of versions 1–12: 101, 118, 124, 126, 149,
 * 157, 161, 169, 191, 203, 209, 218). Every slot here is exercised by test/ort-capi.test.ts.
 * To add a call: docs/ort-capi.md, "Adding a call".
 */

/** The OrtApi version this binding was written for: ORT 1.N ships API N. */
export const ORT_API_VERSION = 30;

export interface Slot {
  /** Index of the function pointer in `struct OrtApi`. */
  index: number;
  /** OrtApi version that appended it. */
  since: number;
}

export const SLOTS = {
  // version 1
  GetErrorCode: { index: 1, since: 1 },
  GetErrorMessage: { index: 2, since: 1 },
  CreateEnv: { index: 3, since: 1 },
  CreateSessionFromArray: { index: 8, since: 1 },
  CreateSessionOptions: { index: 10, since: 1 },
  SetSessionExecutionMode: { index: 13, since: 1 },
  EnableProfiling: { index: 14, since: 1 },
  SetSessionGraphOptimizationLevel: { index: 23, since: 1 },
  SetIntraOpNumThreads: { index: 24, since: 1 },
  SetInterOpNumThreads: { index: 25, since: 1 },
  SessionGetInputCount: { index: 30, since: 1 },
  SessionGetOutputCount: { index: 31, since: 1 },
  SessionGetInputTypeInfo: { index: 33, since: 1 },
  SessionGetOutputTypeInfo: { index: 34, since: 1 },
  SessionGetInputName: { index: 36, since: 1 },
  SessionGetOutputName: { index: 37, since: 1 },
  CreateRunOptions: { index: 39, since: 1 },
  CreateTensorAsOrtValue: { index: 48, since: 1 },
  CreateTensorWithDataAsOrtValue: { index: 49, since: 1 },
  GetTensorMutableData: { index: 51, since: 1 },
  CastTypeInfoToTensorInfo: { index: 55, since: 1 },
  GetTensorElementType: { index: 60, since: 1 },
  GetDimensionsCount: { index: 61, since: 1 },
  GetDimensions: { index: 62, since: 1 },
  GetTensorTypeAndShape: { index: 65, since: 1 },
  CreateMemoryInfo: { index: 68, since: 1 },
  CreateCpuMemoryInfo: { index: 69, since: 1 },
  MemoryInfoGetName: { index: 71, since: 1 },
  MemoryInfoGetId: { index: 72, since: 1 },
  MemoryInfoGetMemType: { index: 73, since: 1 },
  MemoryInfoGetType: { index: 74, since: 1 },
  AllocatorFree: { index: 76, since: 1 },
  GetAllocatorWithDefaultOptions: { index: 78, since: 1 },
  ReleaseEnv: { index: 92, since: 1 },
  ReleaseStatus: { index: 93, since: 1 },
  ReleaseMemoryInfo: { index: 94, since: 1 },
  ReleaseSession: { index: 95, since: 1 },
  ReleaseValue: { index: 96, since: 1 },
  ReleaseRunOptions: { index: 97, since: 1 },
  ReleaseTypeInfo: { index: 98, since: 1 },
  ReleaseTensorTypeAndShapeInfo: { index: 99, since: 1 },
  ReleaseSessionOptions: { index: 100, since: 1 },
  // version 2
  SessionEndProfiling: { index: 110, since: 2 },
  // version 5
  AddSessionConfigEntry: { index: 130, since: 5 },
  CreateAllocator: { index: 131, since: 5 },
  ReleaseAllocator: { index: 132, since: 5 },
  RunWithBinding: { index: 133, since: 5 },
  CreateIoBinding: { index: 134, since: 5 },
  ReleaseIoBinding: { index: 135, since: 5 },
  BindInput: { index: 136, since: 5 },
  BindOutput: { index: 137, since: 5 },
  BindOutputToDevice: { index: 138, since: 5 },
  GetBoundOutputValues: { index: 140, since: 5 },
  ClearBoundInputs: { index: 141, since: 5 },
  ClearBoundOutputs: { index: 142, since: 5 },
  // version 8
  AddRunConfigEntry: { index: 165, since: 8 },
  // version 10
  GetTensorMemoryInfo: { index: 194, since: 10 },
  SynchronizeBoundInputs: { index: 202, since: 10 },
  SynchronizeBoundOutputs: { index: 203, since: 10 },
  // version 11
  SessionOptionsAppendExecutionProvider_CUDA_V2: { index: 204, since: 11 },
  CreateCUDAProviderOptions: { index: 205, since: 11 },
  UpdateCUDAProviderOptions: { index: 206, since: 11 },
  GetCUDAProviderOptionsAsString: { index: 207, since: 11 },
  ReleaseCUDAProviderOptions: { index: 208, since: 11 },
} as const satisfies Record<string, Slot>;

export type CallName = keyof typeof SLOTS;
