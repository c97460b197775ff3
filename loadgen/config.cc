#include "loadgen/config.h"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

ABSL_FLAG(int, clients, 1000, "number of client connections, one greenlet each");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "measured run time, after the warm-up (e.g. 10s, 1m)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "time to run before measuring (connections are made first; 0 for none)");
ABSL_FLAG(int, message_size, 64, "bytes per message; each message is echoed back whole");
ABSL_FLAG(int, pipeline, 1, "messages in flight per client");
ABSL_FLAG(std::string, target, "",
          "HOST:PORT of an external echo server; empty runs the embedded server on 127.0.0.1:0");
ABSL_FLAG(int, client_threads, 1, "client threads, one hub each; clients are spread evenly");
ABSL_FLAG(int, server_threads, 1,
          "threads of the embedded echo server (SO_REUSEPORT listeners); ignored with --target");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5), "timeout of each connect");
ABSL_FLAG(absl::Duration, response_timeout, absl::Seconds(5),
          "longest wait for an echo before the connection counts a timeout error and is "
          "re-made (0: no limit)");
ABSL_FLAG(double, rate, 0,
          "0: closed loop (each client sends when its echo is back). >0: open loop at this many "
          "messages/s in total; latency is measured from each message's intended send time "
          "(coordinated-omission correction, as wrk2), the uncorrected figure beside it");
ABSL_FLAG(std::string, json, "", "write the full result as JSON to this file");
ABSL_FLAG(bool, progress, true, "print a progress line every second");

namespace loadgen {
namespace {

absl::Status UsageError(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

}  // namespace

absl::StatusOr<Target> ParseTarget(absl::string_view text) {
  const auto bad = [&](absl::string_view why) {
    return UsageError(absl::StrCat("--target must be HOST:PORT, got \"", text, "\": ", why));
  };
  absl::string_view host;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    const std::size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("missing ']' after an IPv6 address");
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (!absl::ConsumePrefix(&rest, ":")) return bad("missing ':PORT' after ']'");
    port_text = rest;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("missing ':PORT'");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (absl::StrContains(host, ':')) return bad("an IPv6 address needs brackets: [ADDR]:PORT");
  }
  if (host.empty()) return bad("empty host");
  int port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) ||
      port_text.find_first_not_of("0123456789") != absl::string_view::npos) {
    return bad("the port is not a number");
  }
  if (port < 1 || port > 65535) return bad("the port must be in 1..65535");
  return Target{std::string(host), port};
}

absl::Status Validate(const Config& c) {
  if (c.clients < 1 || c.clients > kMaxClients) {
    return UsageError(absl::StrCat("--clients must be in 1..", kMaxClients, ", got ", c.clients));
  }
  if (c.duration <= absl::ZeroDuration() || c.duration == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat("--duration must be positive and finite, got ",
                                   absl::FormatDuration(c.duration)));
  }
  if (c.warmup < absl::ZeroDuration() || c.warmup == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat("--warmup must be zero or positive and finite, got ",
                                   absl::FormatDuration(c.warmup)));
  }
  if (c.message_size < 1 || c.message_size > kMaxMessageSize) {
    return UsageError(absl::StrCat("--message_size must be in 1..", kMaxMessageSize, " bytes, got ",
                                   c.message_size));
  }
  if (c.pipeline < 1) {
    return UsageError(absl::StrCat("--pipeline must be at least 1, got ", c.pipeline));
  }
  if (static_cast<std::int64_t>(c.pipeline) * c.message_size > kMaxInFlightBytes) {
    return UsageError(absl::StrCat("--pipeline * --message_size must be at most ", kMaxInFlightBytes,
                                   " bytes in flight per client, got ", c.pipeline, " * ",
                                   c.message_size));
  }
  if (!c.target.empty()) {
    absl::StatusOr<Target> target = ParseTarget(c.target);
    if (!target.ok()) return target.status();
  }
  if (c.client_threads < 1 || c.client_threads > kMaxThreads) {
    return UsageError(absl::StrCat("--client_threads must be in 1..", kMaxThreads, ", got ",
                                   c.client_threads));
  }
  if (c.client_threads > c.clients) {
    return UsageError(absl::StrCat("--client_threads (", c.client_threads,
                                   ") must not exceed --clients (", c.clients, ")"));
  }
  if (c.server_threads < 1 || c.server_threads > kMaxThreads) {
    return UsageError(absl::StrCat("--server_threads must be in 1..", kMaxThreads, ", got ",
                                   c.server_threads));
  }
  if (c.connect_timeout <= absl::ZeroDuration()) {
    return UsageError(absl::StrCat("--connect_timeout must be positive, got ",
                                   absl::FormatDuration(c.connect_timeout)));
  }
  if (c.response_timeout < absl::ZeroDuration()) {
    return UsageError(absl::StrCat("--response_timeout must be zero (no limit) or positive, got ",
                                   absl::FormatDuration(c.response_timeout)));
  }
  if (!(c.rate >= 0) || std::isinf(c.rate)) {  // Also rejects NaN.
    return UsageError(absl::StrCat("--rate must be 0 (closed loop) or a positive number of "
                                   "messages/s, got ",
                                   c.rate));
  }
  return absl::OkStatus();
}

absl::Status CheckArgs(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) {
        return UsageError(absl::StrCat("unexpected argument \"", argv[i + 1],
                                       "\" (loadgen takes flags only)"));
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return UsageError(absl::StrCat("unexpected argument \"", arg, "\" (loadgen takes flags only)"));
    }
    absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    absl::string_view name = body;
    absl::string_view value;
    const std::size_t eq = body.find('=');
    const bool has_value = eq != absl::string_view::npos;
    if (has_value) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
    }
    // Abseil's usage and flag-source flags are handled by absl::ParseCommandLine itself.
    if (name == "help" || name == "helpfull" || name == "helpshort" || name == "helppackage" ||
        name == "version" || name == "only_check_args") {
      continue;
    }
    if (name == "helpon" || name == "helpmatch" || name == "flagfile" || name == "fromenv" ||
        name == "tryfromenv" || name == "undefok") {
      if (!has_value) ++i;  // Its value is the next argument.
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      // --noprogress form of a boolean flag.
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr || flag->IsRetired()) {
      return UsageError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) continue;
      if (i + 1 >= argc) return UsageError(absl::StrCat("--", name, " is missing its value"));
      value = argv[++i];
    }
    // Parsing into the flag itself is harmless: absl::ParseCommandLine sets the same value again.
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return UsageError(absl::StrCat("--", name, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

Config ConfigFromFlags() {
  Config c;
  c.clients = absl::GetFlag(FLAGS_clients);
  c.duration = absl::GetFlag(FLAGS_duration);
  c.warmup = absl::GetFlag(FLAGS_warmup);
  c.message_size = absl::GetFlag(FLAGS_message_size);
  c.pipeline = absl::GetFlag(FLAGS_pipeline);
  c.target = absl::GetFlag(FLAGS_target);
  c.client_threads = absl::GetFlag(FLAGS_client_threads);
  c.server_threads = absl::GetFlag(FLAGS_server_threads);
  c.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  c.response_timeout = absl::GetFlag(FLAGS_response_timeout);
  c.rate = absl::GetFlag(FLAGS_rate);
  c.json_path = absl::GetFlag(FLAGS_json);
  c.progress = absl::GetFlag(FLAGS_progress);
  return c;
}

namespace {

[[noreturn]] void ExitWithUsageError(const absl::Status& status) {
  std::fprintf(stderr, "loadgen: usage error: %s\nRun 'loadgen --help' for the flags.\n",
               std::string(status.message()).c_str());
  std::fflush(stderr);
  std::exit(kExitUsage);
}

}  // namespace

std::string UsageText() {
  std::string out = absl::StrCat("loadgen: ", absl::ProgramUsageMessage(), "\n\nFlags:\n");
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), "loadgen/")) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  for (const absl::CommandLineFlag* flag : flags) {
    const std::string value = flag->DefaultValue();
    absl::StrAppend(&out, "  --", flag->Name(), " (default: ",
                    flag->IsOfType<std::string>() ? absl::StrCat("\"", value, "\"") : value,
                    ")\n      ", flag->Help(), "\n");
  }
  absl::StrAppend(&out,
                  "\nExit codes: 0 clean run, 1 the run counted errors, 2 usage error, 3 set-up "
                  "failure.\n");
  return out;
}

Config ParseCommandLineOrExit(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "drives greenlet clients against an echo server and reports throughput, latency and "
      "greenlet switch cost.\n"
      "  loadgen                        # embedded echo server, 1000 clients, 10 s\n"
      "  loadgen --target=HOST:PORT     # an external TCP echo server");
  absl::FlagsUsageConfig usage;
  // --help and --helpshort list this package's flags (abseil's default filter matches files named
  // after the binary, which would hide config.cc's).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "loadgen/");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);

  if (absl::Status s = CheckArgs(argc, argv); !s.ok()) ExitWithUsageError(s);
  // Abseil's --help exits with status 1; asking for help is not an error here.
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-help" || arg == "--helpshort" || arg == "-helpshort") {
      std::fputs(UsageText().c_str(), stdout);
      std::exit(kExitOk);
    }
  }
  absl::ParseCommandLine(argc, argv);
  Config config = ConfigFromFlags();
  if (absl::Status s = Validate(config); !s.ok()) ExitWithUsageError(s);
  return config;
}

}  // namespace loadgen
