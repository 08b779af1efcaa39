// ort_runtime.h: dlopen of libonnxruntime, the process environment, sessions.
#include <dlfcn.h>

#include <cstring>
#include <mutex>

#include "w4a8/ort_op.h"
#include "w4a8/ort_runtime.h"
#include "op_support.h"

namespace w4a8::ort {
namespace {
std::mutex g_mu;
Runtime* g_runtime = nullptr;
}  // namespace

std::string TakeMessage(const OrtApiView& api, OrtStatus* status) {
  if (!status) return "";
  std::string msg = api.GetErrorMessage(status);
  api.ReleaseStatus(status);
  return msg;
}

const Runtime* CurrentRuntime() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_runtime;
}

const Runtime* OpenRuntime(const std::string& library_path, std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_runtime) {
    if (g_runtime->path == library_path) return g_runtime;
    *error = "ONNX Runtime is already open from " + g_runtime->path + "; one process uses one library";
    return nullptr;
  }
  // RTLD_LOCAL: ORT's symbols stay out of the global namespace (onnxruntime-node may load its own copy).
  void* lib = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    *error = "cannot open " + library_path + ": " + (e ? e : "dlopen failed");
    return nullptr;
  }
  auto get_base = reinterpret_cast<OrtGetApiBaseFn>(dlsym(lib, "OrtGetApiBase"));
  if (!get_base) {
    *error = library_path + " does not export OrtGetApiBase; not an ONNX Runtime library";
    dlclose(lib);
    return nullptr;
  }
  const OrtApiBase* base = get_base();
  const OrtApi* table = base ? base->GetApi(kOrtApiVersion) : nullptr;
  if (!table) {
    *error = library_path + " (ONNX Runtime " + (base ? base->GetVersionString() : "?") + ") does not serve API version " +
             std::to_string(kOrtApiVersion) + "; install onnxruntime-node 1.16 or newer";
    dlclose(lib);
    return nullptr;
  }
  auto* rt = new Runtime();
  rt->library = lib;
  rt->path = library_path;
  rt->version = base->GetVersionString();
  rt->base = base;
  rt->api = OrtApiView::From(table);
  if (OrtStatus* s = rt->api.CreateEnv(ORT_LOGGING_LEVEL_ERROR, "w4a8", &rt->env)) {
    *error = "ONNX Runtime CreateEnv failed: " + TakeMessage(rt->api, s);
    delete rt;
    dlclose(lib);
    return nullptr;
  }
  g_runtime = rt;  // never closed: ORT's threads and the env live until the process exits
  return rt;
}

size_t ElementBytes(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return 8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return 1;
    default: return 0;
  }
}

namespace {

bool ReadInfo(const OrtApiView& a, OrtTypeInfo* ti, ValueInfo* out, std::string* error) {
  ONNXType kind = ONNX_TYPE_UNKNOWN;
  if (OrtStatus* s = a.GetOnnxTypeFromTypeInfo(ti, &kind)) return *error = TakeMessage(a, s), false;
  out->is_tensor = kind == ONNX_TYPE_TENSOR;
  if (!out->is_tensor) return true;
  const OrtTensorTypeAndShapeInfo* info = nullptr;  // owned by ti
  if (OrtStatus* s = a.CastTypeInfoToTensorInfo(ti, &info)) return *error = TakeMessage(a, s), false;
  size_t rank = 0;
  OrtStatus* s = a.GetTensorElementType(info, &out->type);
  if (!s) s = a.GetDimensionsCount(info, &rank);
  if (!s) {
    out->dims.assign(rank, 0);
    s = a.GetDimensions(info, out->dims.data(), rank);
  }
  std::vector<const char*> names(rank, nullptr);
  if (!s) s = a.GetSymbolicDimensions(info, names.data(), rank);
  if (s) return *error = TakeMessage(a, s), false;
  out->symbolic.clear();
  for (const char* n : names) out->symbolic.push_back(n ? n : "");
  return true;
}

}  // namespace

std::unique_ptr<Session> Session::Create(const Runtime& rt, const std::string& model_path, const SessionConfig& config,
                                         std::string* error) {
  const OrtApiView& a = rt.api;
  std::unique_ptr<Session> session(new Session(rt));
  OrtSessionOptions* options = nullptr;
  if (OrtStatus* s = a.CreateSessionOptions(&options)) return *error = TakeMessage(a, s), nullptr;
  OrtStatus* s = nullptr;
  if (config.intra_op_threads > 0) s = a.SetIntraOpNumThreads(options, config.intra_op_threads);
  for (const auto& e : config.entries) {
    if (s) break;
    s = a.AddSessionConfigEntry(options, e.first.c_str(), e.second.c_str());
  }
  if (!s && config.register_w4a8) s = AddW4A8Domain(rt.api.table, options);
  if (!s && !config.custom_ops_library.empty()) s = a.RegisterCustomOpsLibrary_V2(options, config.custom_ops_library.c_str());
  if (!s) s = a.CreateSession(rt.env, model_path.c_str(), options, &session->session_);
  a.ReleaseSessionOptions(options);
  if (s) return *error = TakeMessage(a, s), nullptr;

  OrtAllocator* alloc = nullptr;
  if (OrtStatus* st = a.GetAllocatorWithDefaultOptions(&alloc)) return *error = TakeMessage(a, st), nullptr;
  for (int side = 0; side < 2; ++side) {
    size_t count = 0;
    OrtStatus* st = side == 0 ? a.SessionGetInputCount(session->session_, &count)
                              : a.SessionGetOutputCount(session->session_, &count);
    if (st) return *error = TakeMessage(a, st), nullptr;
    auto& list = side == 0 ? session->inputs_ : session->outputs_;
    for (size_t i = 0; i < count; ++i) {
      ValueInfo v;
      char* name = nullptr;
      st = side == 0 ? a.SessionGetInputName(session->session_, i, alloc, &name)
                     : a.SessionGetOutputName(session->session_, i, alloc, &name);
      if (st) return *error = TakeMessage(a, st), nullptr;
      v.name = name;
      if (OrtStatus* f = a.AllocatorFree(alloc, name)) return *error = TakeMessage(a, f), nullptr;
      OrtTypeInfo* ti = nullptr;
      st = side == 0 ? a.SessionGetInputTypeInfo(session->session_, i, &ti)
                     : a.SessionGetOutputTypeInfo(session->session_, i, &ti);
      if (st) return *error = TakeMessage(a, st), nullptr;
      const bool ok = ReadInfo(a, ti, &v, error);
      a.ReleaseTypeInfo(ti);
      if (!ok) return nullptr;
      list.push_back(std::move(v));
    }
  }
  return session;
}

Session::~Session() {
  if (session_) rt_.api.ReleaseSession(session_);
}

bool Session::Run(const std::vector<InputTensor>& feeds, const std::vector<std::string>& fetches,
                  std::vector<OutputTensor>* out, std::string* error, bool keep_values,
                  const std::vector<InputTensor>& into) const {
  const OrtApiView& a = rt_.api;
  OrtMemoryInfo* mem = nullptr;
  if (OrtStatus* s = a.CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &mem)) return *error = TakeMessage(a, s), false;
  std::vector<OrtValue*> in_values(feeds.size(), nullptr), out_values(fetches.size() + into.size(), nullptr);
  std::vector<const char*> in_names, out_names;
  auto cleanup = [&] {
    for (OrtValue* v : in_values) if (v) a.ReleaseValue(v);
    for (OrtValue* v : out_values) if (v) a.ReleaseValue(v);
    a.ReleaseMemoryInfo(mem);
  };
  // A value over the caller's memory; an empty tensor (a past of length 0) still needs a non-null pointer.
  static uint8_t empty_byte = 0;
  const auto wrap = [&](const InputTensor& t, const char* what, OrtValue** value) {
    void* data = t.bytes ? t.data : &empty_byte;
    if (OrtStatus* s = a.CreateTensorWithDataAsOrtValue(mem, data, t.bytes, t.dims.data(), t.dims.size(), t.type, value)) {
      *error = std::string(what) + " \"" + t.name + "\": " + TakeMessage(a, s);
      return false;
    }
    return true;
  };
  for (size_t i = 0; i < feeds.size(); ++i) {
    if (!wrap(feeds[i], "input", &in_values[i])) return cleanup(), false;
    in_names.push_back(feeds[i].name.c_str());
  }
  for (const auto& n : fetches) out_names.push_back(n.c_str());
  for (size_t i = 0; i < into.size(); ++i) {
    if (!wrap(into[i], "output", &out_values[fetches.size() + i])) return cleanup(), false;
    out_names.push_back(into[i].name.c_str());
  }
  if (OrtStatus* s = a.Run(session_, nullptr, in_names.data(), in_values.data(), in_values.size(), out_names.data(),
                           out_names.size(), out_values.data())) {
    *error = TakeMessage(a, s);
    cleanup();
    return false;
  }
  out->clear();
  for (size_t i = 0; i < fetches.size(); ++i) {
    OutputTensor t;
    t.name = fetches[i];
    TensorView v;
    if (OrtStatus* s = Describe(a, out_values[i], &v)) {
      *error = "output \"" + t.name + "\": " + TakeMessage(a, s);
      cleanup();
      return false;
    }
    t.type = v.type;
    t.dims = std::move(v.dims);
    const size_t count = v.count;
    const void* data = v.data;
    const size_t eb = ElementBytes(t.type);
    if (eb == 0) {
      *error = "output \"" + t.name + "\" has an element type sessions cannot return (" + std::to_string((int)t.type) + ")";
      cleanup();
      return false;
    }
    if (keep_values) {
      // The value now belongs to the output (released with its last reference, on whichever thread).
      const OrtApiView* api = &a;
      t.value = std::shared_ptr<void>(out_values[i], [api](void* v) { api->ReleaseValue(static_cast<OrtValue*>(v)); });
      out_values[i] = nullptr;
      t.data = static_cast<const uint8_t*>(data);
      t.size = count * eb;
    } else {
      // Not resize(): its zero fill is a third pass over outputs that can be megabytes (KV caches).
      t.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + count * eb);
    }
    out->push_back(std::move(t));
  }
  cleanup();
  return true;
}

}  // namespace w4a8::ort
