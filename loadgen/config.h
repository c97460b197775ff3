// loadgen::Config — what one load-generator run does, from the command line.
//
// The flags (abseil flags, defined in config.cc; `loadgen --help` lists them with defaults) are
// read once into a plain Config value. Validate() is a pure function over that value, so every
// rule is tested without touching the global flags.
//
//   loadgen::Config config = loadgen::ParseCommandLineOrExit(argc, argv);   // exit 2 on bad input
//
// Usage errors follow the binaries' rule (base/flags.h): exit code 2 and one line,
// "loadgen: --flag=value: what is allowed", for an unknown flag, a flag value that does not
// parse, a stray positional argument, or a value Validate() rejects (zero clients, message size
// 0, negative duration, malformed --target, ...). --help prints UsageText() and exits 0.
//
// Thread-safety: ParseCommandLineOrExit and ConfigFromFlags read the process-wide flags; call them
// from main before starting threads. Config itself is a value type.
#ifndef LOADGEN_CONFIG_H_
#define LOADGEN_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/flags.h"
#include "loadgen/protocol.h"

namespace loadgen {

// Exit codes of the loadgen binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRunErrors = 1;   // The run finished but counted errors.
inline constexpr int kExitUsage = gevent::kExitUsage;  // Bad command line; nothing was run.
// fd limit, server start-up, --target does not resolve or accepts no connection within
// --connect_timeout, --json not writable (checked before the run).
inline constexpr int kExitSetupFailed = 3;
// 128 + SIGINT / SIGTERM: the run was stopped by the signal (the report of what ran is printed).
inline constexpr int kExitInterruptedBase = 128;

// Limits that Validate enforces.
inline constexpr int kMaxClients = 1'000'000;
inline constexpr int kMaxThreads = 256;
// One greenlet per client writes whole messages before it reads the echoes, so the bytes in
// flight per connection must fit in the socket buffers or client and server could both block in
// send. 64 KiB fits the loopback defaults (net.ipv4.tcp_rmem/wmem) with room to spare.
inline constexpr std::int64_t kMaxInFlightBytes = 64 * 1024;
// So a single message fits that too (the --message_size help text says 1..65536).
inline constexpr int kMaxMessageSize = static_cast<int>(kMaxInFlightBytes);
// --value_size: a GET reply must fit the reader's 1 MiB buffer.
inline constexpr int kMaxValueSize = 512 * 1024;

struct Config {
  int clients = 1000;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration warmup = absl::Seconds(1);
  int message_size = 64;
  int pipeline = 1;                    // Messages in flight per client.
  std::string target;                  // HOST:PORT, or empty for the embedded echo server.
  int client_threads = 1;
  int server_threads = 1;              // Embedded server only.
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration response_timeout = absl::Seconds(5);  // Per message; zero: none.
  double rate = 0;                     // Total messages/s; 0: closed loop.
  std::string json_path;               // Empty: no JSON file.
  bool progress = true;                // Per-second progress lines.
  // --protocol and its options (protocol.h). redis and http need --target.
  std::string protocol = "echo";       // echo, redis or http (ParseProtocol).
  std::string ratio = "1:10";          // redis: SET:GET.
  std::int64_t keyspace = 100000;      // redis: keys key:0 .. key:N-1.
  int value_size = 32;                 // redis: SET value bytes.
  std::string path = "/";              // http: the GET's path.
  std::vector<std::string> headers;    // http: each --header=NAME:VALUE, in order.
  std::int64_t requests_per_connection = 0;  // Reconnect after this many; 0: never.
  // --tls: every connection over TLS (RunLoad makes the contexts; see --help).
  bool tls = false;
  std::string tls_ca;         // With --target: the CA file verifying the server.
  bool tls_insecure = false;  // With --target: no verification at all.

  bool embedded() const { return target.empty(); }
  // protocol_kind: the parsed --protocol (Validate has checked it; kEcho if it does not parse).
  Protocol protocol_kind() const {
    absl::StatusOr<Protocol> p = ParseProtocol(protocol);
    return p.ok() ? *p : Protocol::kEcho;
  }
};

// Target: a parsed --target.
struct Target {
  std::string host;  // Without brackets for an IPv6 literal.
  int port = 0;
};

// ParseTarget splits "HOST:PORT" (IPv6 as "[::1]:PORT"). InvalidArgument naming --target on an
// empty host, a missing or non-numeric port, or a port outside 1..65535.
absl::StatusOr<Target> ParseTarget(absl::string_view text);

// Validate checks every field and the combinations; the first problem found is returned as
// InvalidArgument whose message starts with the flag and its value ("--clients=0: must be ...").
absl::Status Validate(const Config& config);

// CheckArgs: gevent::CheckArgs (base/flags.h) for loadgen: every flag must exist, its value must
// parse, and there must be no positional argument.
absl::Status CheckArgs(int argc, char** argv);

// ConfigFromFlags reads the current flag values (no validation).
Config ConfigFromFlags();

// HeadersFromArgs: every --header value in argv, in order (the flag is repeatable).
std::vector<std::string> HeadersFromArgs(int argc, char** argv);

// UsageText: what --help prints: the program's purpose and every loadgen flag with its default.
std::string UsageText();

// ParseCommandLineOrExit: gevent::ParseFlagsOrExit (CheckArgs, --help on stdout and exit 0,
// absl::ParseCommandLine), then Validate. Any usage error prints one line to stderr and exits
// with kExitUsage.
Config ParseCommandLineOrExit(int argc, char** argv);

}  // namespace loadgen

#endif  // LOADGEN_CONFIG_H_
