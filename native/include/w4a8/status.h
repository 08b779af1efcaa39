// Status codes of the native core. Core functions never throw across the C API boundary;
// the N-API glue turns a non-OK status into a JS error with the message attached and the status
// as properties (`status`: the number, `code`: StatusCode's string).
#pragma once
#include <new>
#include <utility>

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

// The stable identifier of a status for callers that branch on it (the N-API glue sets it as the
// `code` of a JS error, beside the numeric `status`): never reworded, unlike StatusName.
inline const char* StatusCode(Status s) {
  switch (s) {
    case Status::kOk: return "W4A8_OK";
    case Status::kInvalidArgument: return "W4A8_INVALID_ARGUMENT";
    case Status::kUnsupported: return "W4A8_UNSUPPORTED";
    case Status::kOutOfMemory: return "W4A8_OUT_OF_MEMORY";
    case Status::kCudaError: return "W4A8_CUDA_ERROR";
    case Status::kNumericalError: return "W4A8_NUMERICAL_ERROR";
    case Status::kCancelled: return "W4A8_CANCELLED";
  }
  return "W4A8_UNKNOWN";
}

// Runs fn() -> Status at an API boundary, turning what may escape the core's C++ (bad_alloc, also
// when a thread-pool worker threw it and the pool rethrew it on the caller) into a status, so that
// no exception ever unwinds into the caller (Node's libuv pool would terminate the process).
template <typename Fn>
Status StatusFromExceptions(Fn&& fn) noexcept {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  } catch (...) {
    return Status::kInvalidArgument;
  }
}

}  // namespace w4a8
