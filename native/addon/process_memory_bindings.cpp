// The C heap as glibc sees it (mallinfo2) and malloc_trim: calibration sessions free hundreds of
// MB at a time, and glibc keeps freed memory in its arenas unless asked to give it back.
// Elsewhere than glibc both report nothing and do nothing.
#include "registry.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace w4a8::addon {
namespace {
Napi::Value MallocStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 m = mallinfo2();
  out.Set("available", true);
  out.Set("arenaBytes", static_cast<double>(m.arena));      // sbrk'd main arena + other arenas' heaps
  out.Set("mmappedBytes", static_cast<double>(m.hblkhd));   // blocks served by their own mmap
  out.Set("inUseBytes", static_cast<double>(m.uordblks));   // allocated, not freed (arenas)
  out.Set("freeBytes", static_cast<double>(m.fordblks));    // freed but kept in the arenas
  out.Set("topReleasableBytes", static_cast<double>(m.keepcost));
#else
  out.Set("available", false);
#endif
  return out;
}

Napi::Value ReleaseFreedMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
  exports.Set("releaseFreedMemory", Napi::Function::New(env, ReleaseFreedMemory));
}
}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
