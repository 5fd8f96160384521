import type { CallName } from './api-table.ts';

/**
 * Our own C declarations of the calls in api-table.ts, in koffi's prototype syntax, copied from
 * onnxruntime_c_api.h. Handles are opaque pointers (koffi gives them to JavaScript as bigints); a
 * `char **` that ORT fills with memory we must free is declared `void **` so that we get its address.
 * Enums are `int`. Every call returning `OrtStatus *` is checked by status.ts.
 */
export const OPAQUE_TYPES = [
  'OrtStatus', 'OrtEnv', 'OrtSessionOptions', 'OrtSession', 'OrtRunOptions', 'OrtMemoryInfo', 'OrtAllocator',
  'OrtValue', 'OrtIoBinding', 'OrtTypeInfo', 'OrtTensorTypeAndShapeInfo', 'OrtCUDAProviderOptionsV2',
] as const;

export const DECLARATIONS: Record<CallName, string> = {
  GetErrorCode: 'int GetErrorCode(const OrtStatus *status)',
  GetErrorMessage: 'const char *GetErrorMessage(const OrtStatus *status)',
  ReleaseStatus: 'void ReleaseStatus(OrtStatus *status)',

  CreateEnv: 'OrtStatus *CreateEnv(int log_severity_level, const char *logid, _Out_ OrtEnv **out)',
  ReleaseEnv: 'void ReleaseEnv(OrtEnv *env)',

  CreateSessionOptions: 'OrtStatus *CreateSessionOptions(_Out_ OrtSessionOptions **out)',
  SetSessionExecutionMode: 'OrtStatus *SetSessionExecutionMode(OrtSessionOptions *options, int execution_mode)',
  EnableProfiling: 'OrtStatus *EnableProfiling(OrtSessionOptions *options, const char *profile_file_prefix)',
  SetSessionGraphOptimizationLevel: 'OrtStatus *SetSessionGraphOptimizationLevel(OrtSessionOptions *options, int level)',
  SetIntraOpNumThreads: 'OrtStatus *SetIntraOpNumThreads(OrtSessionOptions *options, int n)',
  SetInterOpNumThreads: 'OrtStatus *SetInterOpNumThreads(OrtSessionOptions *options, int n)',
  AddSessionConfigEntry: 'OrtStatus *AddSessionConfigEntry(OrtSessionOptions *options, const char *key, const char *value)',
  ReleaseSessionOptions: 'void ReleaseSessionOptions(OrtSessionOptions *options)',

  CreateCUDAProviderOptions: 'OrtStatus *CreateCUDAProviderOptions(_Out_ OrtCUDAProviderOptionsV2 **out)',
  UpdateCUDAProviderOptions:
    'OrtStatus *UpdateCUDAProviderOptions(OrtCUDAProviderOptionsV2 *cuda_options, const char **keys, const char **values, size_t num_keys)',
  GetCUDAProviderOptionsAsString:
    'OrtStatus *GetCUDAProviderOptionsAsString(const OrtCUDAProviderOptionsV2 *cuda_options, OrtAllocator *allocator, _Out_ void **ptr)',
  SessionOptionsAppendExecutionProvider_CUDA_V2:
    'OrtStatus *SessionOptionsAppendExecutionProvider_CUDA_V2(OrtSessionOptions *options, const OrtCUDAProviderOptionsV2 *cuda_options)',
  ReleaseCUDAProviderOptions: 'void ReleaseCUDAProviderOptions(OrtCUDAProviderOptionsV2 *input)',

  CreateSessionFromArray:
    'OrtStatus *CreateSessionFromArray(const OrtEnv *env, const void *model_data, size_t model_data_length, const OrtSessionOptions *options, _Out_ OrtSession **out)',
  SessionGetInputCount: 'OrtStatus *SessionGetInputCount(const OrtSession *session, _Out_ size_t *out)',
  SessionGetOutputCount: 'OrtStatus *SessionGetOutputCount(const OrtSession *session, _Out_ size_t *out)',
  SessionGetInputName: 'OrtStatus *SessionGetInputName(const OrtSession *session, size_t index, OrtAllocator *allocator, _Out_ void **value)',
  SessionGetOutputName: 'OrtStatus *SessionGetOutputName(const OrtSession *session, size_t index, OrtAllocator *allocator, _Out_ void **value)',
  SessionGetInputTypeInfo: 'OrtStatus *SessionGetInputTypeInfo(const OrtSession *session, size_t index, _Out_ OrtTypeInfo **type_info)',
  SessionGetOutputTypeInfo: 'OrtStatus *SessionGetOutputTypeInfo(const OrtSession *session, size_t index, _Out_ OrtTypeInfo **type_info)',
  SessionEndProfiling: 'OrtStatus *SessionEndProfiling(OrtSession *session, OrtAllocator *allocator, _Out_ void **out)',
  ReleaseSession: 'void ReleaseSession(OrtSession *session)',

  CastTypeInfoToTensorInfo: 'OrtStatus *CastTypeInfoToTensorInfo(const OrtTypeInfo *type_info, _Out_ OrtTensorTypeAndShapeInfo **out)',
  ReleaseTypeInfo: 'void ReleaseTypeInfo(OrtTypeInfo *info)',
  GetTensorElementType: 'OrtStatus *GetTensorElementType(const OrtTensorTypeAndShapeInfo *info, _Out_ int *out)',
  GetDimensionsCount: 'OrtStatus *GetDimensionsCount(const OrtTensorTypeAndShapeInfo *info, _Out_ size_t *out)',
  GetDimensions: 'OrtStatus *GetDimensions(const OrtTensorTypeAndShapeInfo *info, _Out_ int64_t *dim_values, size_t dim_values_length)',
  ReleaseTensorTypeAndShapeInfo: 'void ReleaseTensorTypeAndShapeInfo(OrtTensorTypeAndShapeInfo *info)',

  CreateMemoryInfo: 'OrtStatus *CreateMemoryInfo(const char *name, int type, int id, int mem_type, _Out_ OrtMemoryInfo **out)',
  CreateCpuMemoryInfo: 'OrtStatus *CreateCpuMemoryInfo(int type, int mem_type, _Out_ OrtMemoryInfo **out)',
  MemoryInfoGetName: 'OrtStatus *MemoryInfoGetName(const OrtMemoryInfo *ptr, _Out_ const char **out)',
  MemoryInfoGetId: 'OrtStatus *MemoryInfoGetId(const OrtMemoryInfo *ptr, _Out_ int *out)',
  MemoryInfoGetMemType: 'OrtStatus *MemoryInfoGetMemType(const OrtMemoryInfo *ptr, _Out_ int *out)',
  MemoryInfoGetType: 'OrtStatus *MemoryInfoGetType(const OrtMemoryInfo *ptr, _Out_ int *out)',
  ReleaseMemoryInfo: 'void ReleaseMemoryInfo(OrtMemoryInfo *info)',

  GetAllocatorWithDefaultOptions: 'OrtStatus *GetAllocatorWithDefaultOptions(_Out_ OrtAllocator **out)',
  CreateAllocator: 'OrtStatus *CreateAllocator(const OrtSession *session, const OrtMemoryInfo *mem_info, _Out_ OrtAllocator **out)',
  AllocatorFree: 'OrtStatus *AllocatorFree(OrtAllocator *allocator, void *p)',
  ReleaseAllocator: 'void ReleaseAllocator(OrtAllocator *allocator)',

  CreateTensorAsOrtValue:
    'OrtStatus *CreateTensorAsOrtValue(OrtAllocator *allocator, const int64_t *shape, size_t shape_len, int type, _Out_ OrtValue **out)',
  CreateTensorWithDataAsOrtValue:
    'OrtStatus *CreateTensorWithDataAsOrtValue(const OrtMemoryInfo *info, void *p_data, size_t p_data_len, const int64_t *shape, size_t shape_len, int type, _Out_ OrtValue **out)',
  GetTensorMutableData: 'OrtStatus *GetTensorMutableData(OrtValue *value, _Out_ void **out)',
  GetTensorTypeAndShape: 'OrtStatus *GetTensorTypeAndShape(const OrtValue *value, _Out_ OrtTensorTypeAndShapeInfo **out)',
  GetTensorMemoryInfo: 'OrtStatus *GetTensorMemoryInfo(const OrtValue *value, _Out_ OrtMemoryInfo **mem_info)',
  ReleaseValue: 'void ReleaseValue(OrtValue *value)',

  CreateRunOptions: 'OrtStatus *CreateRunOptions(_Out_ OrtRunOptions **out)',
  AddRunConfigEntry: 'OrtStatus *AddRunConfigEntry(OrtRunOptions *options, const char *key, const char *value)',
  ReleaseRunOptions: 'void ReleaseRunOptions(OrtRunOptions *options)',

  CreateIoBinding: 'OrtStatus *CreateIoBinding(OrtSession *session, _Out_ OrtIoBinding **out)',
  BindInput: 'OrtStatus *BindInput(OrtIoBinding *binding, const char *name, const OrtValue *value)',
  BindOutput: 'OrtStatus *BindOutput(OrtIoBinding *binding, const char *name, const OrtValue *value)',
  BindOutputToDevice: 'OrtStatus *BindOutputToDevice(OrtIoBinding *binding, const char *name, const OrtMemoryInfo *mem_info)',
  GetBoundOutputValues: 'OrtStatus *GetBoundOutputValues(const OrtIoBinding *binding, OrtAllocator *allocator, _Out_ void **output, _Out_ size_t *output_count)',
  ClearBoundInputs: 'void ClearBoundInputs(OrtIoBinding *binding)',
  ClearBoundOutputs: 'void ClearBoundOutputs(OrtIoBinding *binding)',
  SynchronizeBoundInputs: 'OrtStatus *SynchronizeBoundInputs(OrtIoBinding *binding)',
  SynchronizeBoundOutputs: 'OrtStatus *SynchronizeBoundOutputs(OrtIoBinding *binding)',
  RunWithBinding: 'OrtStatus *RunWithBinding(OrtSession *session, const OrtRunOptions *run_options, const OrtIoBinding *binding)',
  ReleaseIoBinding: 'void ReleaseIoBinding(OrtIoBinding *binding)',
};
