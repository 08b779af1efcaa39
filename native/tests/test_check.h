// Tiny assertion helpers shared by the native tests: CHECK counts every failure and prints the
// first 20 (an exhaustive sweep that breaks would otherwise flood the log); Finish() is main's return.
#pragma once
#include <cstdio>

static int g_failures = 0;
#define CHECK(cond, ...)                                 \
  do {                                                   \
    if (!(cond)) {                                       \
      if (g_failures++ < 20) {                           \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
        std::printf(__VA_ARGS__);                        \
        std::printf("\n");                               \
      }                                                  \
    }                                                    \
  } while (0)

inline int Finish() {
  if (g_failures) {
    std::printf("FAIL: %d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
