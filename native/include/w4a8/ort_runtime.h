// ONNX Runtime opened at run time (dlopen of a libonnxruntime.so.1 given by path), and sessions
// created through it with the com.w4a8 domain registered. Nothing here links against ORT: the
// addon loads and its kernels run when no library is given.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "w4a8/ort_abi.h"

namespace w4a8::ort {

struct Runtime {
  void* library = nullptr;      // dlopen handle (kept open for the life of the process)
  std::string path;
  std::string version;          // OrtApiBase::GetVersionString()
  const OrtApiBase* base = nullptr;
  OrtApiView api;
  OrtEnv* env = nullptr;        // one environment per process
};

// Opens `library_path` once per process (later calls with another path fail with a message; the
// same path returns the runtime already open). Returns nullptr and sets *error on failure.
const Runtime* OpenRuntime(const std::string& library_path, std::string* error);
// The runtime opened so far, or nullptr.
const Runtime* CurrentRuntime();

// The message of a non-null status, which is released.
std::string TakeMessage(const OrtApiView& api, OrtStatus* status);

struct ValueInfo {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  bool is_tensor = true;
  std::vector<int64_t> dims;             // -1 where symbolic
  std::vector<std::string> symbolic;     // the symbolic names ("" where none)
};

struct SessionConfig {
  int intra_op_threads = 0;                                  // 0: ORT's default
  bool register_w4a8 = true;                                 // add the com.w4a8 domain (built in)
  std::string custom_ops_library;                            // or register this library through ORT's loader
  std::vector<std::pair<std::string, std::string>> entries;  // AddSessionConfigEntry
};

// A tensor handed to Run (the caller keeps `data` alive during the call).
struct InputTensor {
  std::string name;
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  void* data;
  size_t bytes;
};
struct OutputTensor {
  std::string name;
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // the values, unless Run was asked to keep ORT's own buffer:
  // then `data` / `size` point into ORT's output value, which `value` keeps alive (bytes stays empty).
  std::shared_ptr<void> value;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

class Session {
 public:
  ~Session();
  // nullptr and *error on failure. ORT reads external data beside the model itself.
  static std::unique_ptr<Session> Create(const Runtime& rt, const std::string& model_path, const SessionConfig& config,
                                         std::string* error);
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }
  // Runs once; thread-safe (ORT sessions allow concurrent runs). false and *error on failure.
  // keep_values: outputs keep ORT's buffers (OutputTensor::value) instead of copying them into `bytes`,
  // so a caller that copies them once more (into JS memory) does not copy twice.
  // into: outputs written into the caller's memory (preallocated; ORT fails the run if the node's
  // output shape differs), not returned in *out. One may share memory with a feed: the KV cache of
  // CachedAttention kept in one buffer (ort_op.h), present bound to past's memory.
  bool Run(const std::vector<InputTensor>& feeds, const std::vector<std::string>& fetches,
           std::vector<OutputTensor>* out, std::string* error, bool keep_values = false,
           const std::vector<InputTensor>& into = {}) const;

 private:
  explicit Session(const Runtime& rt) : rt_(rt) {}
  const Runtime& rt_;
  OrtSession* session_ = nullptr;
  std::vector<ValueInfo> inputs_, outputs_;
};

// Bytes per element of the tensor types sessions exchange (0 for others).
size_t ElementBytes(ONNXTensorElementDataType type);

}  // namespace w4a8::ort
