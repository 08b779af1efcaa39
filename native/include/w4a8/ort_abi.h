// The part of the ONNX Runtime C ABI that w4a8 uses, declared by the project (no ORT header is
// needed to build). ORT exposes one entry point, OrtGetApiBase(); its GetApi(version) returns a
// table of function pointers ("OrtApi") that is versioned and APPEND-ONLY: an entry keeps its
// position forever, so a position valid in one release is valid in every later one.
//
// Positions and signatures below were read from the published onnxruntime_c_api.h of
// ORT_API_VERSION 29 (ONNX Runtime 1.29) and hold for the 1.30 library onnxruntime-node ships.
// Every entry was added at or before API version 16 except where noted; we request kOrtApiVersion.
// native/tests/test_ort_abi.cpp calls every entry declared here, so a wrong position fails loudly.
//
// Calling convention: the default C one on Linux/macOS x86-64 and arm64 (ORT_API_CALL is empty there).
#pragma once
#include <cstddef>
#include <cstdint>

namespace w4a8::ort {

// The API version we ask GetApi for (<= the library's; 1.30 serves up to 30).
constexpr uint32_t kOrtApiVersion = 22;

// Opaque handles (ORT owns their layout).
struct OrtStatus;
struct OrtEnv;
struct OrtSession;
struct OrtSessionOptions;
struct OrtValue;
struct OrtRunOptions;
struct OrtTypeInfo;
struct OrtTensorTypeAndShapeInfo;
struct OrtMemoryInfo;
struct OrtCustomOpDomain;
struct OrtKernelInfo;
struct OrtKernelContext;
struct OrtShapeInferContext;
struct OrtThreadingOptions;
struct OrtApi;  // the table: only ever read through OrtApiView below

// The allocator is a struct of function pointers whose first field is a version number.
struct OrtAllocator {
  uint32_t version;
  void* (*Alloc)(OrtAllocator* self, size_t size);
  void (*Free)(OrtAllocator* self, void* p);
  const OrtMemoryInfo* (*Info)(const OrtAllocator* self);
};

struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};
using OrtGetApiBaseFn = const OrtApiBase* (*)();

// Enumerations (values as in ONNX / ORT).
enum OrtErrorCode : int { ORT_OK = 0, ORT_FAIL = 1, ORT_INVALID_ARGUMENT = 2, ORT_NO_SUCHFILE = 3, ORT_NO_MODEL = 4,
                          ORT_ENGINE_ERROR = 5, ORT_RUNTIME_EXCEPTION = 6, ORT_INVALID_PROTOBUF = 7,
                          ORT_MODEL_LOADED = 8, ORT_NOT_IMPLEMENTED = 9, ORT_INVALID_GRAPH = 10, ORT_EP_FAIL = 11 };
enum OrtLoggingLevel : int { ORT_LOGGING_LEVEL_VERBOSE = 0, ORT_LOGGING_LEVEL_INFO = 1, ORT_LOGGING_LEVEL_WARNING = 2,
                             ORT_LOGGING_LEVEL_ERROR = 3, ORT_LOGGING_LEVEL_FATAL = 4 };
enum GraphOptimizationLevel : int { ORT_DISABLE_ALL = 0, ORT_ENABLE_BASIC = 1, ORT_ENABLE_EXTENDED = 2, ORT_ENABLE_ALL = 99 };
enum OrtAllocatorType : int { OrtInvalidAllocator = -1, OrtDeviceAllocator = 0, OrtArenaAllocator = 1 };
enum OrtMemType : int { OrtMemTypeDefault = 0 };
enum ONNXType : int { ONNX_TYPE_UNKNOWN = 0, ONNX_TYPE_TENSOR = 1 };
// ONNX TensorProto.DataType numbering.
enum ONNXTensorElementDataType : int {
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED = 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 = 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 = 3,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16 = 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16 = 5,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 = 6, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 = 7,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING = 8, ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL = 9,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 = 10, ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE = 11,
};
enum OrtCustomOpInputOutputCharacteristic : int { INPUT_OUTPUT_REQUIRED = 0, INPUT_OUTPUT_OPTIONAL = 1, INPUT_OUTPUT_VARIADIC = 2 };

// A custom op: a struct of callbacks ORT reads by position (layout of API version 29; ORT reads
// the fields added after `version` only when `version` is high enough).
struct OrtCustomOp {
  uint32_t version;
  void* (*CreateKernel)(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info);
  const char* (*GetName)(const OrtCustomOp* op);
  const char* (*GetExecutionProviderType)(const OrtCustomOp* op);
  ONNXTensorElementDataType (*GetInputType)(const OrtCustomOp* op, size_t index);
  size_t (*GetInputTypeCount)(const OrtCustomOp* op);
  ONNXTensorElementDataType (*GetOutputType)(const OrtCustomOp* op, size_t index);
  size_t (*GetOutputTypeCount)(const OrtCustomOp* op);
  void (*KernelCompute)(void* kernel, OrtKernelContext* context);
  void (*KernelDestroy)(void* kernel);
  OrtCustomOpInputOutputCharacteristic (*GetInputCharacteristic)(const OrtCustomOp* op, size_t index);
  OrtCustomOpInputOutputCharacteristic (*GetOutputCharacteristic)(const OrtCustomOp* op, size_t index);
  OrtMemType (*GetInputMemoryType)(const OrtCustomOp* op, size_t index);
  int (*GetVariadicInputMinArity)(const OrtCustomOp* op);
  int (*GetVariadicInputHomogeneity)(const OrtCustomOp* op);
  int (*GetVariadicOutputMinArity)(const OrtCustomOp* op);
  int (*GetVariadicOutputHomogeneity)(const OrtCustomOp* op);
  OrtStatus* (*CreateKernelV2)(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info, void** kernel);
  OrtStatus* (*KernelComputeV2)(void* kernel, OrtKernelContext* context);
  OrtStatus* (*InferOutputShapeFn)(const OrtCustomOp* op, OrtShapeInferContext* ctx);
  int (*GetStartVersion)(const OrtCustomOp* op);
  int (*GetEndVersion)(const OrtCustomOp* op);
  size_t (*GetMayInplace)(int** input_index, int** output_index);
  void (*ReleaseMayInplace)(int* input_index, int* output_index);
  size_t (*GetAliasMap)(int** input_index, int** output_index);
  void (*ReleaseAliasMap)(int* input_index, int* output_index);
};
static_assert(sizeof(OrtCustomOp) == 8 + 25 * sizeof(void*), "OrtCustomOp: version + 25 callbacks");

// X(position, name, return type, parameter list) for every OrtApi entry we use.
#define W4A8_ORT_API_ENTRIES(X)                                                                                     \
  X(0, CreateStatus, OrtStatus*, (OrtErrorCode code, const char* msg))                                              \
  X(1, GetErrorCode, OrtErrorCode, (const OrtStatus* status))                                                       \
  X(2, GetErrorMessage, const char*, (const OrtStatus* status))                                                     \
  X(3, CreateEnv, OrtStatus*, (OrtLoggingLevel level, const char* logid, OrtEnv** out))                             \
  X(7, CreateSession, OrtStatus*, (const OrtEnv* env, const char* model_path, const OrtSessionOptions* options,     \
                                   OrtSession** out))                                                               \
  X(9, Run, OrtStatus*, (OrtSession* session, const OrtRunOptions* run_options, const char* const* input_names,    \
                         const OrtValue* const* inputs, size_t input_len, const char* const* output_names,          \
                         size_t output_names_len, OrtValue** outputs))                                              \
  X(10, CreateSessionOptions, OrtStatus*, (OrtSessionOptions** out))                                                \
  X(23, SetSessionGraphOptimizationLevel, OrtStatus*, (OrtSessionOptions* options, GraphOptimizationLevel level))   \
  X(24, SetIntraOpNumThreads, OrtStatus*, (OrtSessionOptions* options, int threads))                                \
  X(25, SetInterOpNumThreads, OrtStatus*, (OrtSessionOptions* options, int threads))                                \
  X(26, CreateCustomOpDomain, OrtStatus*, (const char* domain, OrtCustomOpDomain** out))                            \
  X(27, CustomOpDomain_Add, OrtStatus*, (OrtCustomOpDomain* domain, const OrtCustomOp* op))                         \
  X(28, AddCustomOpDomain, OrtStatus*, (OrtSessionOptions* options, OrtCustomOpDomain* domain))                     \
  X(30, SessionGetInputCount, OrtStatus*, (const OrtSession* session, size_t* out))                                 \
  X(31, SessionGetOutputCount, OrtStatus*, (const OrtSession* session, size_t* out))                                \
  X(33, SessionGetInputTypeInfo, OrtStatus*, (const OrtSession* session, size_t index, OrtTypeInfo** out))          \
  X(34, SessionGetOutputTypeInfo, OrtStatus*, (const OrtSession* session, size_t index, OrtTypeInfo** out))         \
  X(36, SessionGetInputName, OrtStatus*, (const OrtSession* session, size_t index, OrtAllocator* allocator,         \
                                          char** out))                                                              \
  X(37, SessionGetOutputName, OrtStatus*, (const OrtSession* session, size_t index, OrtAllocator* allocator,        \
                                           char** out))                                                             \
  X(48, CreateTensorAsOrtValue, OrtStatus*, (OrtAllocator* allocator, const int64_t* shape, size_t shape_len,       \
                                             ONNXTensorElementDataType type, OrtValue** out))                       \
  X(49, CreateTensorWithDataAsOrtValue, OrtStatus*, (const OrtMemoryInfo* info, void* data, size_t data_bytes,      \
                                                     const int64_t* shape, size_t shape_len,                        \
                                                     ONNXTensorElementDataType type, OrtValue** out))               \
  X(50, IsTensor, OrtStatus*, (const OrtValue* value, int* out))                                                    \
  X(51, GetTensorMutableData, OrtStatus*, (OrtValue* value, void** out))                                            \
  X(55, CastTypeInfoToTensorInfo, OrtStatus*, (const OrtTypeInfo* type_info, const OrtTensorTypeAndShapeInfo** out)) \
  X(56, GetOnnxTypeFromTypeInfo, OrtStatus*, (const OrtTypeInfo* type_info, ONNXType* out))                         \
  X(60, GetTensorElementType, OrtStatus*, (const OrtTensorTypeAndShapeInfo* info, ONNXTensorElementDataType* out))  \
  X(61, GetDimensionsCount, OrtStatus*, (const OrtTensorTypeAndShapeInfo* info, size_t* out))                       \
  X(62, GetDimensions, OrtStatus*, (const OrtTensorTypeAndShapeInfo* info, int64_t* dims, size_t dims_len))         \
  X(63, GetSymbolicDimensions, OrtStatus*, (const OrtTensorTypeAndShapeInfo* info, const char** dim_params,         \
                                            size_t dim_params_len))                                                 \
  X(64, GetTensorShapeElementCount, OrtStatus*, (const OrtTensorTypeAndShapeInfo* info, size_t* out))               \
  X(65, GetTensorTypeAndShape, OrtStatus*, (const OrtValue* value, OrtTensorTypeAndShapeInfo** out))                \
  X(69, CreateCpuMemoryInfo, OrtStatus*, (OrtAllocatorType type, OrtMemType mem_type, OrtMemoryInfo** out))         \
  X(76, AllocatorFree, OrtStatus*, (OrtAllocator* allocator, void* p))                                              \
  X(78, GetAllocatorWithDefaultOptions, OrtStatus*, (OrtAllocator** out))                                           \
  X(85, KernelInfoGetAttribute_float, OrtStatus*, (const OrtKernelInfo* info, const char* name, float* out))        \
  X(86, KernelInfoGetAttribute_int64, OrtStatus*, (const OrtKernelInfo* info, const char* name, int64_t* out))      \
  X(87, KernelInfoGetAttribute_string, OrtStatus*, (const OrtKernelInfo* info, const char* name, char* out,         \
                                                    size_t* size))                                                  \
  X(88, KernelContext_GetInputCount, OrtStatus*, (const OrtKernelContext* context, size_t* out))                    \
  X(89, KernelContext_GetOutputCount, OrtStatus*, (const OrtKernelContext* context, size_t* out))                   \
  X(90, KernelContext_GetInput, OrtStatus*, (const OrtKernelContext* context, size_t index, const OrtValue** out))  \
  X(91, KernelContext_GetOutput, OrtStatus*, (OrtKernelContext* context, size_t index, const int64_t* dims,         \
                                              size_t dim_count, OrtValue** out))                                    \
  X(92, ReleaseEnv, void, (OrtEnv* p))                                                                              \
  X(93, ReleaseStatus, void, (OrtStatus* p))                                                                        \
  X(94, ReleaseMemoryInfo, void, (OrtMemoryInfo* p))                                                                \
  X(95, ReleaseSession, void, (OrtSession* p))                                                                      \
  X(96, ReleaseValue, void, (OrtValue* p))                                                                          \
  X(98, ReleaseTypeInfo, void, (OrtTypeInfo* p))                                                                    \
  X(99, ReleaseTensorTypeAndShapeInfo, void, (OrtTensorTypeAndShapeInfo* p))                                        \
  X(100, ReleaseSessionOptions, void, (OrtSessionOptions* p))                                                       \
  X(101, ReleaseCustomOpDomain, void, (OrtCustomOpDomain* p))                                                       \
  X(130, AddSessionConfigEntry, OrtStatus*, (OrtSessionOptions* options, const char* key, const char* value))       \
  /* API version 13 */                                                                                              \
  X(228, RegisterCustomOpsLibrary_V2, OrtStatus*, (OrtSessionOptions* options, const char* library_path))           \
  X(230, KernelInfo_GetInputCount, OrtStatus*, (const OrtKernelInfo* info, size_t* out))                            \
  /* API version 15 */                                                                                              \
  X(249, KernelInfoGetConstantInput_tensor, OrtStatus*, (const OrtKernelInfo* info, size_t index, int* is_constant, \
                                                         const OrtValue** out))                                     \
  /* API version 18 */                                                                                              \
  X(274, KernelContext_ParallelFor, OrtStatus*, (const OrtKernelContext* context, void (*fn)(void*, size_t),         \
                                                 size_t total, size_t num_batch, void* usr_data))

// The table seen through our declarations: one typed pointer per entry, read at its position.
struct OrtApiView {
#define W4A8_ORT_FIELD(pos, name, ret, params) ret(*name) params = nullptr;
  W4A8_ORT_API_ENTRIES(W4A8_ORT_FIELD)
#undef W4A8_ORT_FIELD
  const OrtApi* table = nullptr;

  static OrtApiView From(const OrtApi* api) {
    OrtApiView v;
    v.table = api;
    void* const* slots = reinterpret_cast<void* const*>(api);
#define W4A8_ORT_LOAD(pos, name, ret, params) v.name = reinterpret_cast<ret(*) params>(slots[pos]);
    W4A8_ORT_API_ENTRIES(W4A8_ORT_LOAD)
#undef W4A8_ORT_LOAD
    return v;
  }
};

}  // namespace w4a8::ort
