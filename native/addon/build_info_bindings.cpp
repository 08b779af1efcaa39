// What this build of the addon contains (CUDA or not); the CPU kernels add their own ISA report.
#include "registry.h"
#ifdef W4A8_WITH_CUDA
#include "w4a8/cuda_api.h"
#endif

namespace w4a8::addon {
namespace {
void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object info = Napi::Object::New(env);
#ifdef W4A8_WITH_CUDA
  info.Set("cudaCompiled", true);
  // Queried at load: a build with CUDA still runs on a machine without a GPU.
  char name[256] = {0};
  int major = 0, minor = 0;
  info.Set("cudaDevices", w4a8::cuda::DeviceCount());
  if (w4a8::cuda::DeviceDescription(name, sizeof(name), &major, &minor)) {
    info.Set("cudaDevice", std::string(name));
    info.Set("cudaComputeCapability", std::to_string(major) + "." + std::to_string(minor));
  }
#else
  info.Set("cudaCompiled", false);
  info.Set("cudaDevices", 0);
#endif
  info.Set("napiVersion", NAPI_VERSION);
  exports.Set("buildInfo", info);
}
}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
