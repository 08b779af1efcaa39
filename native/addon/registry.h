// Each addon/*.cpp file registers its JS functions with W4A8_ADDON_MODULE; addon.cpp only
// walks the list, so adding a module never edits a shared file.
#pragma once
#include <napi.h>
#include <vector>

namespace w4a8::addon {

using ModuleInit = void (*)(Napi::Env env, Napi::Object exports);

inline std::vector<ModuleInit>& Modules() {
  static std::vector<ModuleInit> modules;
  return modules;
}

struct ModuleRegistrar {
  explicit ModuleRegistrar(ModuleInit init) { Modules().push_back(init); }
};

}  // namespace w4a8::addon

#define W4A8_ADDON_MODULE(init_fn) \
  static ::w4a8::addon::ModuleRegistrar w4a8_registrar_##init_fn(init_fn)
