// Command-line helpers the standalone benchmarks share.
#pragma once
#include <cstdlib>
#include <cstring>
#include <vector>

namespace w4a8::bench {

// "1,8,32" -> {1, 8, 32}.
inline std::vector<int> ParseList(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    const char* comma = std::strchr(p, ',');
    if (!comma) break;
    p = comma + 1;
  }
  return out;
}

}  // namespace w4a8::bench
