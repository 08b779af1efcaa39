// Device discovery. Static cudart: a machine with no driver reports zero devices, not an error.
#include <cuda_runtime.h>
#include <cstring>
#include "w4a8/cuda_api.h"

namespace w4a8::cuda {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

bool DeviceDescription(char* name, int name_len, int* major, int* minor) {
  if (DeviceCount() == 0) return false;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return false;
  std::strncpy(name, prop.name, name_len - 1);
  name[name_len - 1] = 0;
  *major = prop.major;
  *minor = prop.minor;
  return true;
}

}  // namespace w4a8::cuda
