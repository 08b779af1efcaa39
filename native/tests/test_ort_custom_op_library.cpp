// libw4a8_ort.so as an ONNX Runtime user loads it: ORT's own library loader
// (RegisterCustomOpsLibrary_V2) registers it, with no built-in com.w4a8 domain, and a model of two
// chained W4A8MatMul nodes (int4 asymmetric with bias, then fp4 W4A16; batch 2) runs and matches the
// scalar references.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <cmath>
#include <random>

#include "ort_test_util.h"
#include "test_check.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/ort_runtime.h"

using namespace w4a8;
using test::Proto;

int main() {
  const std::string lib = test::FindOrtLibrary();
  if (lib.empty()) {
    std::printf("SKIP: no libonnxruntime.so.1 (run npm ci to install onnxruntime-node, or set W4A8_ORT_LIBRARY)\n");
    return 77;
  }
  std::string error;
  const ort::Runtime* rt = ort::OpenRuntime(lib, &error);
  CHECK(rt != nullptr, "%s", error.c_str());
  if (!rt) return Finish();
  const unsigned seed = std::random_device{}();
  std::printf("ONNX Runtime %s; custom-op library %s; seed %u\n", rt->version.c_str(), W4A8_ORT_LIBRARY_FILE, seed);
  std::mt19937 rng(seed);
  const int32_t k = 200, hidden = 72, n = 37;
  test::RandomWeight w1(test::WeightKind::kInt4Asymmetric, hidden, k, 32, rng);
  test::RandomWeight w2(test::WeightKind::kFp4, n, hidden, 16, rng);
  std::vector<float> bias = test::RandomBias(hidden, rng);

  Proto graph;
  Proto n1, n2;
  n1.Str(1, "A").Str(1, "c1").Str(1, "s1").Str(1, "z1").Str(1, "b1").Str(2, "H").Str(3, "fc1").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  n1.Msg(5, test::IntAttr("K", k)).Msg(5, test::IntAttr("N", hidden)).Msg(5, test::IntAttr("bits", 4)).Msg(5, test::IntAttr("block_size", 32));
  n1.Msg(5, test::StrAttr("weight_format", "int4")).Msg(5, test::StrAttr("activation_format", "int8"));
  n2.Str(1, "H").Str(1, "c2").Str(1, "s2").Str(2, "Y").Str(3, "fc2").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  n2.Msg(5, test::IntAttr("K", hidden)).Msg(5, test::IntAttr("N", n)).Msg(5, test::IntAttr("bits", 4)).Msg(5, test::IntAttr("block_size", 16));
  n2.Msg(5, test::StrAttr("weight_format", "fp4")).Msg(5, test::StrAttr("activation_format", "none"));
  graph.Msg(1, n1).Msg(1, n2).Str(2, "two_layers");
  auto add = [&](const char* name, int type, std::vector<int64_t> dims, const void* p, size_t bytes) {
    graph.Msg(5, test::Initializer(name, type, dims, p, bytes));
  };
  add("c1", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {hidden, BlocksPerRow(k, 32), 16}, w1.codes.data(), w1.codes.size());
  add("s1", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {(int64_t)w1.scales.size()}, w1.scales.data(), w1.scales.size() * 4);
  add("z1", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {(int64_t)w1.zero_points.size()}, w1.zero_points.data(), w1.zero_points.size());
  add("b1", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {hidden}, bias.data(), bias.size() * 4);
  add("c2", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {n, BlocksPerRow(hidden, 16), 8}, w2.codes.data(), w2.codes.size());
  add("s2", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {(int64_t)w2.scales.size()}, w2.scales.data(), w2.scales.size() * 4);
  graph.Msg(11, test::ValueInfo("A", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {"batch", std::to_string(k)}));
  graph.Msg(12, test::ValueInfo("Y", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {"batch", std::to_string(n)}));
  Proto o1, o2, model;
  o1.Str(1, "").Varint(2, 17);
  o2.Str(1, "com.w4a8").Varint(2, 1);
  model.Varint(1, 8).Msg(7, graph).Msg(8, o1).Msg(8, o2);
  const std::string path = "/tmp/w4a8_library_test_" + std::to_string(getpid()) + ".onnx";
  std::ofstream(path, std::ios::binary) << model.bytes();

  // Without the library the model does not load (proves the library, not a built-in, serves the op).
  ort::SessionConfig bare;
  bare.register_w4a8 = false;
  CHECK(ort::Session::Create(*rt, path, bare, &error) == nullptr, "a session without the library loaded the com.w4a8 model");
  ort::SessionConfig config;
  config.register_w4a8 = false;
  config.custom_ops_library = W4A8_ORT_LIBRARY_FILE;
  auto session = ort::Session::Create(*rt, path, config, &error);
  std::remove(path.c_str());
  CHECK(session != nullptr, "session with %s: %s", W4A8_ORT_LIBRARY_FILE, error.c_str());
  if (!session) return Finish();

  const int32_t m = 2;
  std::vector<float> x = test::RandomActivations(m, k, rng);
  std::vector<ort::OutputTensor> out;
  const bool ok = session->Run({{"A", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {m, k}, x.data(), x.size() * 4}}, {"Y"}, &out, &error);
  CHECK(ok, "run: %s", error.c_str());
  if (!ok) return Finish();

  std::vector<float> h((size_t)m * hidden), ref((size_t)m * n);
  cpu::GemmArgs a1;
  a1.m = m; a1.x = x.data(); a1.bias = bias.data(); a1.y = h.data(); a1.act = cpu::ActQuant::kPerToken;
  CHECK(cpu::GemmW4A8Reference(w1.view(), a1) == Status::kOk, "reference 1");
  cpu::GemmArgs a2;
  a2.m = m; a2.x = h.data(); a2.y = ref.data();
  CHECK(cpu::GemmW4A16Reference(w2.view(), a2) == Status::kOk, "reference 2");
  const float* y = reinterpret_cast<const float*>(out[0].bytes.data());
  CHECK(out[0].dims == (std::vector<int64_t>{m, n}), "output shape");
  double max_err = 0, mag = 1e-6;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_err = std::fmax(max_err, std::fabs(y[i] - ref[i]));
    mag = std::fmax(mag, std::fabs(ref[i]));
  }
  std::printf("max |y - reference| = %.3g (max |reference| %.3g)\n", max_err, mag);
  CHECK(max_err <= 1e-5 * mag, "library output differs from the reference by %.3g", max_err);

  // ORT dlcloses the library when its environment goes (at exit), while the kernel pool's
  // threads live on and run the library's code: it must be marked never to be unmapped.
  session.reset();
  void* self = dlopen(W4A8_ORT_LIBRARY_FILE, RTLD_NOW | RTLD_NOLOAD);
  CHECK(self != nullptr, "%s is not loaded after the run", W4A8_ORT_LIBRARY_FILE);
  if (self) {
    link_map* map = nullptr;
    bool nodelete = false;
    if (dlinfo(self, RTLD_DI_LINKMAP, &map) == 0 && map)
      for (const ElfW(Dyn)* d = map->l_ld; d->d_tag != DT_NULL; ++d)
        if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NODELETE)) nodelete = true;
    CHECK(nodelete, "%s lacks DF_1_NODELETE: an unload at exit leaves its worker threads on unmapped code", W4A8_ORT_LIBRARY_FILE);
    dlclose(self);
  }
  return Finish();
}
