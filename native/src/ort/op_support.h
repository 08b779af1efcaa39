// What the com.w4a8 op kernels share (w4a8_matmul_op.cpp, decoder_ops_op.cpp): status-returning steps,
// a tensor's type, shape and data read through ORT's API (also runtime.cpp's, for run outputs), and the
// runner that hands the kernels' cpu::ParallelFor tasks to the session's intra-op threads.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "w4a8/ort_abi.h"

namespace w4a8::ort {

// A status-returning step; the first failure is returned to ORT with its message.
#define W4A8_ORT_TRY(expr)          \
  do {                              \
    OrtStatus* _s = (expr);         \
    if (_s != nullptr) return _s;   \
  } while (0)

struct TensorView {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> dims;
  size_t count = 0;
  const void* data = nullptr;
};

inline OrtStatus* Describe(const OrtApiView& a, const OrtValue* v, TensorView* out) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  W4A8_ORT_TRY(a.GetTensorTypeAndShape(v, &info));
  size_t rank = 0;
  OrtStatus* s = a.GetTensorElementType(info, &out->type);
  if (!s) s = a.GetDimensionsCount(info, &rank);
  if (!s) {
    out->dims.assign(rank, 0);
    s = a.GetDimensions(info, out->dims.data(), rank);
  }
  if (!s) s = a.GetTensorShapeElementCount(info, &out->count);
  a.ReleaseTensorTypeAndShapeInfo(info);
  if (s) return s;
  void* data = nullptr;
  W4A8_ORT_TRY(a.GetTensorMutableData(const_cast<OrtValue*>(v), &data));
  out->data = data;
  return nullptr;
}

inline std::string DimsText(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// For cpu::ScopedTaskRunner: runs a kernel's tasks on the session's intra-op threads
// (KernelContext_ParallelFor), one set of threads for the whole graph.
struct OrtThreads {
  const OrtApiView* api;
  OrtKernelContext* ctx;
  static void Run(void* self, int64_t count, const std::function<void(int64_t)>& fn) {
    auto* t = static_cast<OrtThreads*>(self);
    OrtStatus* s = t->api->KernelContext_ParallelFor(
        t->ctx, [](void* f, size_t i) { (*static_cast<const std::function<void(int64_t)>*>(f))((int64_t)i); },
        (size_t)count, 0, const_cast<std::function<void(int64_t)>*>(&fn));
    if (s == nullptr) return;
    // ORT refused (it does not for a live context): run the tasks here rather than lose the result.
    t->api->ReleaseStatus(s);
    for (int64_t i = 0; i < count; ++i) fn(i);
  }
};

}  // namespace w4a8::ort
