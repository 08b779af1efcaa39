// libw4a8_ort.so: the com.w4a8 custom ops as a standalone ONNX Runtime custom-op library.
// ORT calls RegisterCustomOps when a user registers the library (C: RegisterCustomOpsLibrary_V2,
// C++: Ort::SessionOptions::RegisterCustomOpsLibrary, Python: SessionOptions.register_custom_ops_library,
// ORT GenAI: "custom_ops_library" in genai_config.json).
#include "w4a8/ort_op.h"

extern "C" __attribute__((visibility("default"))) w4a8::ort::OrtStatus* RegisterCustomOps(
    w4a8::ort::OrtSessionOptions* options, const w4a8::ort::OrtApiBase* api_base) {
  const w4a8::ort::OrtApi* api = api_base ? api_base->GetApi(w4a8::ort::kOrtApiVersion) : nullptr;
  if (!api) return nullptr;  // an ORT too old to serve our API version: nothing can report it
  return w4a8::ort::AddW4A8Domain(api, options);
}
