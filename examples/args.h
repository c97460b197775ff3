// Command-line helpers shared by the examples: a port, a host:port, and the usage exit.
#ifndef GEVENT_EXAMPLES_ARGS_H_
#define GEVENT_EXAMPLES_ARGS_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace examples {

// Usage prints "<program>: <problem>" and the usage line to stderr and exits with 2.
[[noreturn]] inline void Usage(const char* program, const std::string& problem,
                               const char* usage) {
  std::fprintf(stderr, "%s: %s\nusage: %s %s\n", program, problem.c_str(), program, usage);
  std::exit(2);
}

// ParsePort: 0..65535 (0: the kernel picks one), or nullopt.
inline std::optional<uint16_t> ParsePort(absl::string_view text) {
  int port = 0;
  if (!absl::SimpleAtoi(text, &port) || port < 0 || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// ParseHostPort: "host:port" (the last ':' splits), or nullopt.
inline std::optional<std::pair<std::string, uint16_t>> ParseHostPort(absl::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return std::nullopt;
  std::optional<uint16_t> port = ParsePort(text.substr(colon + 1));
  if (!port.has_value() || *port == 0) return std::nullopt;
  return std::make_pair(std::string(text.substr(0, colon)), *port);
}

// Announce prints the line the examples' tests wait for, and flushes it.
inline void Announce(const std::string& address) {
  std::printf("listening on %s\n", address.c_str());
  std::fflush(stdout);
}

}  // namespace examples

#endif  // GEVENT_EXAMPLES_ARGS_H_
