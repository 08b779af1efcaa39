// Helpers of the ONNX Runtime tests: find onnxruntime-node's libonnxruntime.so.1, and write a small
// ONNX model holding W4A8MatMul nodes (a minimal protobuf writer: the models are made by the tests,
// never committed).
#pragma once
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "test_cpu_gemm_util.h"
#include "w4a8/half.h"
#include "w4a8/ort_abi.h"

namespace w4a8::test {

// W4A8_ORT_LIBRARY, else node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so.1
// under the source tree; "" when absent.
inline std::string FindOrtLibrary() {
  if (const char* env = std::getenv("W4A8_ORT_LIBRARY")) return env;
  const std::string bin = std::string(W4A8_SOURCE_DIR) + "/node_modules/onnxruntime-node/bin";
  DIR* d = opendir(bin.c_str());
  if (!d) return "";
  std::string found;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("napi-v", 0) != 0) continue;
    const std::string path = bin + "/" + name + "/linux/x64/libonnxruntime.so.1";
    if (std::ifstream(path).good()) found = path;
  }
  closedir(d);
  return found;
}

// ---- protobuf encoding (wire types 0 = varint, 2 = length-delimited) ----
class Proto {
 public:
  Proto& Varint(int field, uint64_t v) {
    Key(field, 0);
    Raw(v);
    return *this;
  }
  Proto& Bytes(int field, const void* data, size_t n) {
    Key(field, 2);
    Raw(n);
    buf_.append(static_cast<const char*>(data), n);
    return *this;
  }
  Proto& Str(int field, const std::string& s) { return Bytes(field, s.data(), s.size()); }
  Proto& Msg(int field, const Proto& m) { return Bytes(field, m.buf_.data(), m.buf_.size()); }
  const std::string& bytes() const { return buf_; }

 private:
  void Key(int field, int wire) { Raw((uint64_t)field << 3 | (uint64_t)wire); }
  void Raw(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back((char)(v | 0x80));
      v >>= 7;
    }
    buf_.push_back((char)v);
  }
  std::string buf_;
};

// TensorProto: dims 1, data_type 2, name 8, raw_data 9.
inline Proto Initializer(const std::string& name, int type, const std::vector<int64_t>& dims, const void* data, size_t bytes) {
  Proto t;
  for (int64_t d : dims) t.Varint(1, (uint64_t)d);
  t.Varint(2, (uint64_t)type).Str(8, name).Bytes(9, data, bytes);
  return t;
}
// ValueInfoProto {name 1, type 2: TypeProto {tensor_type 1: {elem_type 1, shape 2: {dim 1: {dim_value 1 | dim_param 2}}}}}.
inline Proto ValueInfo(const std::string& name, int type, const std::vector<std::string>& dims) {
  Proto shape;
  for (const auto& d : dims) {
    Proto dim;
    if (!d.empty() && d[0] >= '0' && d[0] <= '9') dim.Varint(1, std::stoull(d));
    else dim.Str(2, d);
    shape.Msg(1, dim);
  }
  Proto tensor;
  tensor.Varint(1, (uint64_t)type).Msg(2, shape);
  Proto tp;
  tp.Msg(1, tensor);
  Proto vi;
  vi.Str(1, name).Msg(2, tp);
  return vi;
}
// AttributeProto: name 1, i 3, s 4, type 20 (INT 2, STRING 3).
inline Proto IntAttr(const std::string& name, int64_t v) {
  Proto a;
  a.Str(1, name).Varint(3, (uint64_t)v).Varint(20, 2);
  return a;
}
inline Proto StrAttr(const std::string& name, const std::string& v) {
  Proto a;
  a.Str(1, name).Str(4, v).Varint(20, 3);
  return a;
}

struct OpModelSpec {
  const RandomWeight* weight;
  std::string activation_format;   // int8 | fp8 | none
  bool half = false;               // A, bias and Y in float16
  const std::vector<float>* bias = nullptr;
  int leading_dims = 2;            // A is [batch, seq, K] (2) or [rows, K] (1)
  std::string activation = "none";  // the node's activation attribute: none | swiglu (Y is [.., N / 2])
};

// Writes a graph as a model importing the default domain (opset 17) and com.w4a8 (version 1).
inline void WriteGraphModel(const std::string& path, const Proto& graph) {
  Proto opset_default, opset_w4a8;
  opset_default.Str(1, "").Varint(2, 17);
  opset_w4a8.Str(1, "com.w4a8").Varint(2, 1);
  Proto model;
  model.Varint(1, 8).Str(2, "w4a8-tests").Msg(7, graph).Msg(8, opset_default).Msg(8, opset_w4a8);
  std::ofstream(path, std::ios::binary) << model.bytes();
}

// One W4A8MatMul node: A [.., K] -> Y [.., N], weights as initializers. Written to `path`.
inline void WriteOpModel(const std::string& path, const OpModelSpec& s) {
  const RandomWeight& w = *s.weight;
  const int ftype = s.half ? ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  Proto graph;
  Proto node;
  node.Str(1, "A").Str(1, "codes").Str(1, "scales").Str(1, w.zero_points.empty() ? "" : "zero_points");
  if (s.bias) node.Str(1, "bias");
  node.Str(2, "Y").Str(3, "w4a8_matmul").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  node.Msg(5, IntAttr("K", w.k)).Msg(5, IntAttr("N", w.n)).Msg(5, IntAttr("bits", 4)).Msg(5, IntAttr("block_size", w.group_size));
  node.Msg(5, StrAttr("weight_format", w.kind == WeightKind::kFp4 ? "fp4" : "int4"));
  node.Msg(5, StrAttr("activation_format", s.activation_format));
  if (s.activation != "none") node.Msg(5, StrAttr("activation", s.activation));
  graph.Msg(1, node).Str(2, "w4a8_op_test");
  graph.Msg(5, Initializer("codes", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {w.n, blocks, w.group_size / 2}, w.codes.data(), w.codes.size()));
  graph.Msg(5, Initializer("scales", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {(int64_t)w.scales.size()}, w.scales.data(), w.scales.size() * 4));
  if (!w.zero_points.empty())
    graph.Msg(5, Initializer("zero_points", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {(int64_t)w.zero_points.size()}, w.zero_points.data(), w.zero_points.size()));
  if (s.bias) {
    if (s.half) {
      std::vector<uint16_t> h(s.bias->size());
      FloatToHalfArray(s.bias->data(), h.data(), h.size());
      graph.Msg(5, Initializer("bias", ftype, {w.n}, h.data(), h.size() * 2));
    } else {
      graph.Msg(5, Initializer("bias", ftype, {w.n}, s.bias->data(), s.bias->size() * 4));
    }
  }
  std::vector<std::string> lead = s.leading_dims == 2 ? std::vector<std::string>{"batch", "seq"} : std::vector<std::string>{"rows"};
  auto with = [&](std::vector<std::string> d, int32_t last) { d.push_back(std::to_string(last)); return d; };
  graph.Msg(11, ValueInfo("A", ftype, with(lead, w.k)));
  graph.Msg(12, ValueInfo("Y", ftype, with(lead, s.activation == "swiglu" ? w.n / 2 : w.n)));
  WriteGraphModel(path, graph);
}

}  // namespace w4a8::test
