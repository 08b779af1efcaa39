// Our declarations of the ONNX Runtime C ABI (ort_abi.h) against the real library: every declared
// OrtApi entry is called once, with valid arguments or deliberately bad ones, and its result checked,
// so an entry declared at the wrong position crashes or fails here instead of in a user's session.
// The list of entries called is compared with the declared list at the end.
#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include "ort_test_util.h"
#include "test_check.h"
#include "w4a8/ort_op.h"

using namespace w4a8;
using namespace w4a8::ort;

static OrtApiView g_api;
static std::set<std::string> g_called;
#define API(name) (g_called.insert(#name), g_api.name)

static bool Ok(OrtStatus* s, const char* what) {
  if (!s) return true;
  std::printf("FAIL %s: %s\n", what, g_api.GetErrorMessage(s));
  g_api.ReleaseStatus(s);
  ++g_failures;
  return false;
}

// A probe op (domain w4a8.test, Scale: Y = X * alpha) for the kernel entries W4A8MatMul does not use.
static float g_alpha_seen = 0;
static size_t g_outputs_seen = 0;
struct ProbeKernel { float alpha; };
static const char* ProbeName(const OrtCustomOp*) { return "Scale"; }
static const char* ProbeEp(const OrtCustomOp*) { return nullptr; }
static ONNXTensorElementDataType ProbeType(const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
static size_t ProbeOne(const OrtCustomOp*) { return 1; }
static OrtCustomOpInputOutputCharacteristic ProbeRequired(const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; }
static OrtMemType ProbeMem(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
static int ProbeInt1(const OrtCustomOp*) { return 1; }
static int ProbeEnd(const OrtCustomOp*) { return 1000; }
static OrtStatus* ProbeCreate(const OrtCustomOp*, const OrtApi*, const OrtKernelInfo* info, void** kernel) {
  auto* k = new ProbeKernel{0};
  if (OrtStatus* s = API(KernelInfoGetAttribute_float)(info, "alpha", &k->alpha)) return delete k, s;
  g_alpha_seen = k->alpha;
  *kernel = k;
  return nullptr;
}
static OrtStatus* ProbeCompute(void* kernel, OrtKernelContext* ctx) {
  OrtStatus* s = API(KernelContext_GetOutputCount)(ctx, &g_outputs_seen);
  if (s) return s;
  const OrtValue* x = nullptr;
  if ((s = g_api.KernelContext_GetInput(ctx, 0, &x))) return s;
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if ((s = g_api.GetTensorTypeAndShape(x, &info))) return s;
  size_t count = 0, rank = 0;
  int64_t dims[8] = {0};
  g_api.GetTensorShapeElementCount(info, &count);
  g_api.GetDimensionsCount(info, &rank);
  if (rank > 8) rank = 8;
  g_api.GetDimensions(info, dims, rank);
  g_api.ReleaseTensorTypeAndShapeInfo(info);
  OrtValue* y = nullptr;
  if ((s = g_api.KernelContext_GetOutput(ctx, 0, dims, rank, &y))) return s;
  void *xd = nullptr, *yd = nullptr;
  if ((s = g_api.GetTensorMutableData(const_cast<OrtValue*>(x), &xd))) return s;
  if ((s = g_api.GetTensorMutableData(y, &yd))) return s;
  // Element by element through the session's intra-op pool (the entry W4A8MatMul runs its tasks on).
  struct Job { const float* x; float* y; float alpha; } job{static_cast<float*>(xd), static_cast<float*>(yd), static_cast<ProbeKernel*>(kernel)->alpha};
  return API(KernelContext_ParallelFor)(ctx, [](void* j, size_t i) {
    auto* p = static_cast<Job*>(j);
    p->y[i] = p->x[i] * p->alpha;
  }, count, 0, &job);
}
static void ProbeDestroy(void* k) { delete static_cast<ProbeKernel*>(k); }

static OrtCustomOp MakeProbe() {
  OrtCustomOp op;
  std::memset(&op, 0, sizeof(op));
  op.version = 16;
  op.GetName = ProbeName;
  op.GetExecutionProviderType = ProbeEp;
  op.GetInputType = ProbeType;
  op.GetInputTypeCount = ProbeOne;
  op.GetOutputType = ProbeType;
  op.GetOutputTypeCount = ProbeOne;
  op.KernelDestroy = ProbeDestroy;
  op.GetInputCharacteristic = ProbeRequired;
  op.GetOutputCharacteristic = ProbeRequired;
  op.GetInputMemoryType = ProbeMem;
  op.GetVariadicInputMinArity = ProbeInt1;
  op.GetVariadicInputHomogeneity = ProbeInt1;
  op.GetVariadicOutputMinArity = ProbeInt1;
  op.GetVariadicOutputHomogeneity = ProbeInt1;
  op.CreateKernelV2 = ProbeCreate;
  op.KernelComputeV2 = ProbeCompute;
  op.GetStartVersion = ProbeInt1;
  op.GetEndVersion = ProbeEnd;
  return op;
}

// X [n] -> Scale(alpha) -> S -> W4A8MatMul -> Y: one model exercises both ops.
static void WriteAbiModel(const std::string& path, const test::RandomWeight& w) {
  using test::Proto;
  Proto graph;
  Proto scale;
  scale.Str(1, "X").Str(2, "S").Str(3, "probe").Str(4, "Scale").Str(7, "w4a8.test");
  // AttributeProto {name 1, f 2 (fixed32, wire type 5), type 20 = FLOAT (1)}: the float field by hand.
  Proto alpha_attr;
  alpha_attr.Str(1, "alpha").Varint(20, 1);
  const float alpha = 0.5f;
  std::string attr = alpha_attr.bytes();
  attr.push_back((char)(2 << 3 | 5));
  attr.append(reinterpret_cast<const char*>(&alpha), 4);
  scale.Bytes(5, attr.data(), attr.size());
  Proto mm;
  mm.Str(1, "S").Str(1, "codes").Str(1, "scales").Str(2, "Y").Str(3, "mm").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  mm.Msg(5, test::IntAttr("K", w.k)).Msg(5, test::IntAttr("N", w.n)).Msg(5, test::IntAttr("bits", 4));
  mm.Msg(5, test::IntAttr("block_size", w.group_size)).Msg(5, test::StrAttr("weight_format", "int4"));
  mm.Msg(5, test::StrAttr("activation_format", "int8"));
  graph.Msg(1, scale).Msg(1, mm).Str(2, "abi");
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  graph.Msg(5, test::Initializer("codes", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {w.n, blocks, w.group_size / 2}, w.codes.data(), w.codes.size()));
  graph.Msg(5, test::Initializer("scales", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {(int64_t)w.scales.size()}, w.scales.data(), w.scales.size() * 4));
  graph.Msg(11, test::ValueInfo("X", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {"batch", "seq", std::to_string(w.k)}));
  graph.Msg(12, test::ValueInfo("Y", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {"batch", "seq", std::to_string(w.n)}));
  Proto o1, o2, o3;
  o1.Str(1, "").Varint(2, 17);
  o2.Str(1, "com.w4a8").Varint(2, 1);
  o3.Str(1, "w4a8.test").Varint(2, 1);
  Proto model;
  model.Varint(1, 8).Msg(7, graph).Msg(8, o1).Msg(8, o2).Msg(8, o3);
  std::ofstream(path, std::ios::binary) << model.bytes();
}

int main() {
  const std::string lib = test::FindOrtLibrary();
  if (lib.empty()) {
    std::printf("SKIP: no libonnxruntime.so.1 (run npm ci to install onnxruntime-node, or set W4A8_ORT_LIBRARY)\n");
    return 77;
  }
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  CHECK(handle != nullptr, "dlopen %s: %s", lib.c_str(), dlerror());
  if (!handle) return Finish();
  auto get_base = reinterpret_cast<OrtGetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  CHECK(get_base != nullptr, "OrtGetApiBase not exported");
  if (!get_base) return Finish();
  const OrtApiBase* base = get_base();
  std::printf("ONNX Runtime %s from %s; API version %u\n", base->GetVersionString(), lib.c_str(), kOrtApiVersion);
  CHECK(base->GetApi(1000) == nullptr, "GetApi must refuse an API version from the future");
  const OrtApi* table = base->GetApi(kOrtApiVersion);
  CHECK(table != nullptr, "GetApi(%u) returned null", kOrtApiVersion);
  if (!table) return Finish();
  g_api = OrtApiView::From(table);

  // Status entries.
  OrtStatus* st = API(CreateStatus)(ORT_INVALID_ARGUMENT, "abi probe");
  CHECK(API(GetErrorCode)(st) == ORT_INVALID_ARGUMENT, "GetErrorCode");
  CHECK(std::string(API(GetErrorMessage)(st)) == "abi probe", "GetErrorMessage");
  API(ReleaseStatus)(st);

  OrtEnv* env = nullptr;
  Ok(API(CreateEnv)(ORT_LOGGING_LEVEL_ERROR, "w4a8-abi", &env), "CreateEnv");
  OrtSessionOptions* options = nullptr;
  Ok(API(CreateSessionOptions)(&options), "CreateSessionOptions");
  Ok(API(SetSessionGraphOptimizationLevel)(options, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel");
  Ok(API(SetIntraOpNumThreads)(options, 1), "SetIntraOpNumThreads");
  Ok(API(SetInterOpNumThreads)(options, 1), "SetInterOpNumThreads");
  Ok(API(AddSessionConfigEntry)(options, "session.intra_op.allow_spinning", "0"), "AddSessionConfigEntry");
  // A library that does not exist: ORT must answer with an error status, not crash.
  OrtStatus* bad = API(RegisterCustomOpsLibrary_V2)(options, "/nonexistent/libnothing.so");
  CHECK(bad != nullptr, "RegisterCustomOpsLibrary_V2 accepted a missing library");
  if (bad) g_api.ReleaseStatus(bad);
  static const OrtCustomOp probe = MakeProbe();
  OrtCustomOpDomain* domain = nullptr;
  Ok(API(CreateCustomOpDomain)("w4a8.test", &domain), "CreateCustomOpDomain");
  Ok(API(CustomOpDomain_Add)(domain, &probe), "CustomOpDomain_Add");
  Ok(API(AddCustomOpDomain)(options, domain), "AddCustomOpDomain");
  Ok(ort::AddW4A8Domain(table, options), "AddW4A8Domain");

  std::mt19937 rng(7);
  test::RandomWeight w(test::WeightKind::kInt4Symmetric, 24, 48, 16, rng);
  const std::string path = "/tmp/w4a8_abi_" + std::to_string(getpid()) + ".onnx";
  WriteAbiModel(path, w);
  OrtSession* session = nullptr;
  OrtSession* missing = nullptr;
  OrtStatus* nofile = API(CreateSession)(env, "/nonexistent/model.onnx", options, &missing);
  CHECK(nofile != nullptr, "CreateSession accepted a missing model");
  if (nofile) g_api.ReleaseStatus(nofile);
  Ok(g_api.CreateSession(env, path.c_str(), options, &session), "CreateSession");
  std::remove(path.c_str());
  if (!session) return Finish();
  CHECK(g_alpha_seen == 0.5f, "KernelInfoGetAttribute_float read %g, expected 0.5", g_alpha_seen);

  size_t n_in = 0, n_out = 0;
  Ok(API(SessionGetInputCount)(session, &n_in), "SessionGetInputCount");
  Ok(API(SessionGetOutputCount)(session, &n_out), "SessionGetOutputCount");
  CHECK(n_in == 1 && n_out == 1, "counts %zu %zu", n_in, n_out);
  OrtAllocator* alloc = nullptr;
  Ok(API(GetAllocatorWithDefaultOptions)(&alloc), "GetAllocatorWithDefaultOptions");
  char* name = nullptr;
  Ok(API(SessionGetInputName)(session, 0, alloc, &name), "SessionGetInputName");
  CHECK(name && std::string(name) == "X", "input name %s", name ? name : "(null)");
  Ok(API(AllocatorFree)(alloc, name), "AllocatorFree");
  Ok(API(SessionGetOutputName)(session, 0, alloc, &name), "SessionGetOutputName");
  CHECK(name && std::string(name) == "Y", "output name %s", name ? name : "(null)");
  g_api.AllocatorFree(alloc, name);

  for (int side = 0; side < 2; ++side) {
    OrtTypeInfo* ti = nullptr;
    Ok(side == 0 ? API(SessionGetInputTypeInfo)(session, 0, &ti) : API(SessionGetOutputTypeInfo)(session, 0, &ti), "TypeInfo");
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    Ok(API(GetOnnxTypeFromTypeInfo)(ti, &kind), "GetOnnxTypeFromTypeInfo");
    CHECK(kind == ONNX_TYPE_TENSOR, "ONNXType %d", (int)kind);
    const OrtTensorTypeAndShapeInfo* info = nullptr;
    Ok(API(CastTypeInfoToTensorInfo)(ti, &info), "CastTypeInfoToTensorInfo");
    ONNXTensorElementDataType et = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    Ok(API(GetTensorElementType)(info, &et), "GetTensorElementType");
    CHECK(et == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "element type %d", (int)et);
    size_t rank = 0;
    Ok(API(GetDimensionsCount)(info, &rank), "GetDimensionsCount");
    CHECK(rank == 3, "rank %zu", rank);
    int64_t dims[3] = {0, 0, 0};
    Ok(API(GetDimensions)(info, dims, 3), "GetDimensions");
    CHECK(dims[0] == -1 && dims[1] == -1 && dims[2] == (side == 0 ? w.k : w.n), "dims %lld %lld %lld", (long long)dims[0], (long long)dims[1], (long long)dims[2]);
    const char* sym[3] = {nullptr, nullptr, nullptr};
    Ok(API(GetSymbolicDimensions)(info, sym, 3), "GetSymbolicDimensions");
    CHECK(sym[0] && std::string(sym[0]) == "batch" && sym[1] && std::string(sym[1]) == "seq", "symbolic dims");
    API(ReleaseTypeInfo)(ti);
  }

  OrtMemoryInfo* mem = nullptr;
  Ok(API(CreateCpuMemoryInfo)(OrtDeviceAllocator, OrtMemTypeDefault, &mem), "CreateCpuMemoryInfo");
  std::vector<float> x = test::RandomActivations(2, w.k, rng);
  const int64_t xdims[3] = {1, 2, w.k};
  OrtValue* xv = nullptr;
  Ok(API(CreateTensorWithDataAsOrtValue)(mem, x.data(), x.size() * 4, xdims, 3, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &xv), "CreateTensorWithDataAsOrtValue");
  int is_tensor = 0;
  Ok(API(IsTensor)(xv, &is_tensor), "IsTensor");
  CHECK(is_tensor == 1, "IsTensor");
  void* xd = nullptr;
  Ok(API(GetTensorMutableData)(xv, &xd), "GetTensorMutableData");
  CHECK(xd == x.data(), "GetTensorMutableData returned another pointer");
  OrtTensorTypeAndShapeInfo* xinfo = nullptr;
  Ok(API(GetTensorTypeAndShape)(xv, &xinfo), "GetTensorTypeAndShape");
  size_t xcount = 0;
  Ok(API(GetTensorShapeElementCount)(xinfo, &xcount), "GetTensorShapeElementCount");
  CHECK(xcount == x.size(), "element count %zu", xcount);
  API(ReleaseTensorTypeAndShapeInfo)(xinfo);
  OrtValue* scratch = nullptr;
  Ok(API(CreateTensorAsOrtValue)(alloc, xdims, 3, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &scratch), "CreateTensorAsOrtValue");
  API(ReleaseValue)(scratch);

  const char* in_names[] = {"X"};
  const char* out_names[] = {"Y"};
  OrtValue* yv = nullptr;
  Ok(API(Run)(session, nullptr, in_names, &xv, 1, out_names, 1, &yv), "Run");
  CHECK(g_outputs_seen == 1, "KernelContext_GetOutputCount gave %zu", g_outputs_seen);
  if (yv) {
    void* yd = nullptr;
    g_api.GetTensorMutableData(yv, &yd);
    // Reference: Scale by 0.5, then the W4A8 reference with per-token activation scales.
    std::vector<float> xs = x, ref((size_t)2 * w.n);
    for (auto& v : xs) v *= 0.5f;
    cpu::GemmArgs a;
    a.m = 2;
    a.x = xs.data();
    a.y = ref.data();
    a.act = cpu::ActQuant::kPerToken;
    cpu::GemmW4A8Reference(w.view(), a);
    CHECK(std::memcmp(yd, ref.data(), ref.size() * 4) == 0, "Scale -> W4A8MatMul differs from the reference");
    g_api.ReleaseValue(yv);
  }
  g_api.ReleaseValue(xv);
  API(ReleaseMemoryInfo)(mem);
  API(ReleaseSession)(session);
  API(ReleaseSessionOptions)(options);
  API(ReleaseCustomOpDomain)(domain);
  API(ReleaseEnv)(env);

  // The kernel entries W4A8MatMul itself calls, each through its own path above (the run compared
  // bit-exactly): marked here so the completeness check below covers them.
  for (const char* used : {"KernelInfoGetAttribute_int64", "KernelInfoGetAttribute_string", "KernelInfo_GetInputCount",
                           "KernelInfoGetConstantInput_tensor", "KernelContext_GetInputCount", "KernelContext_GetInput",
                           "KernelContext_GetOutput"})
    g_called.insert(used);
  std::set<std::string> declared;
#define W4A8_ORT_NAME(pos, name, ret, params) declared.insert(#name);
  W4A8_ORT_API_ENTRIES(W4A8_ORT_NAME)
#undef W4A8_ORT_NAME
  for (const auto& d : declared) CHECK(g_called.count(d), "declared entry %s is never called by this test", d.c_str());
  std::printf("%zu declared entries called\n", declared.size());
  return Finish();
}
