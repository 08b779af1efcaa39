// Registration only: every module adds itself through W4A8_ADDON_MODULE (registry.h).
#include <napi.h>
#include "registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto init : w4a8::addon::Modules()) init(env, exports);
  return exports;
}

NODE_API_MODULE(w4a8, Init)
