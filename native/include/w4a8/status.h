// Status codes of the native core. Core functions never throw across the C API boundary;
// the N-API glue turns a non-OK status into a JS error with the message attached.
#pragma once

namespace w4a8 {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,   // a shape, length or option the caller should have rejected
  kUnsupported = 2,       // valid request, but this build or CPU cannot do it
  kOutOfMemory = 3,
  kCudaError = 4,
  kNumericalError = 5,    // NaN/Inf found, or a matrix that is not positive definite
  kCancelled = 6,
};

inline const char* StatusName(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kUnsupported: return "unsupported";
    case Status::kOutOfMemory: return "out of memory";
    case Status::kCudaError: return "CUDA error";
    case Status::kNumericalError: return "numerical error";
    case Status::kCancelled: return "cancelled";
  }
  return "unknown status";
}

}  // namespace w4a8
