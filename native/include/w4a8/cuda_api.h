// Host-callable entry points of the CUDA kernels. Declared for every build; without CUDA
// they are not linked, so callers guard them with W4A8_WITH_CUDA.
#pragma once
#include "w4a8/status.h"

namespace w4a8::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU): never fails.
int DeviceCount();
// Name and compute capability of device 0; false when there is none.
bool DeviceDescription(char* name, int name_len, int* major, int* minor);

}  // namespace w4a8::cuda
