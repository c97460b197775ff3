#include "loadgen/config.h"

#include <cmath>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/flags.h"

ABSL_FLAG(int, clients, 1000, "number of client connections, one greenlet each");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "measured run time, after the warm-up (e.g. 10s, 1m)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "time to run before measuring (connections are made first; 0 for none)");
ABSL_FLAG(int, message_size, 64,
          "echo: bytes per message, 1..65536 (and --pipeline * --message_size at most 65536); "
          "each message is echoed back whole");
ABSL_FLAG(int, pipeline, 1,
          "messages (requests) in flight per client; http: HTTP/1.1 pipelining, redis: RESP "
          "pipelining");
ABSL_FLAG(std::string, target, "",
          "HOST:PORT of an external echo server; empty runs the embedded server on 127.0.0.1:0");
ABSL_FLAG(int, client_threads, 1, "client threads, one hub each; clients are spread evenly");
ABSL_FLAG(int, server_threads, 1,
          "threads of the embedded echo server (SO_REUSEPORT listeners); ignored with --target");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5),
          "timeout of each connect; if no client has connected this long after the start, the "
          "run stops with exit 3");
ABSL_FLAG(absl::Duration, response_timeout, absl::Seconds(5),
          "longest wait for an echo before the connection counts a timeout error and is "
          "re-made (0: no limit)");
ABSL_FLAG(double, rate, 0,
          "0: closed loop (each client sends when its echo is back). >0: open loop at this many "
          "messages/s in total; latency is measured from each message's intended send time "
          "(coordinated-omission correction, as wrk2), the uncorrected figure beside it");
ABSL_FLAG(std::string, json, "",
          "write the full result as JSON to this file, latency histograms included for "
          "`loadgen merge` (created before the run: an unwritable path exits 3 at once)");
ABSL_FLAG(bool, progress, true, "print a progress line every second");
ABSL_FLAG(std::string, protocol, "echo",
          "echo (the default: messages echoed back and checked), redis (RESP SET/GET), or http "
          "(HTTP/1.1 keep-alive GET); redis and http need --target");
ABSL_FLAG(std::string, ratio, "1:10", "redis: SET:GET ratio of the requests (memtier's flag)");
ABSL_FLAG(int64_t, keyspace, 100000, "redis: number of keys (key:0 .. key:N-1, chosen at random)");
ABSL_FLAG(int, value_size, 32, "redis: bytes of each SET value, 1..524288");
ABSL_FLAG(std::string, path, "/", "http: the path of each GET (must start with '/')");
ABSL_FLAG(std::string, header, "",
          "http: an extra request header NAME:VALUE; repeat the flag for more (Host comes from "
          "--target unless given)");
ABSL_FLAG(int64_t, requests_per_connection, 0,
          "reconnect after this many requests on a connection (0: never), so connects and the "
          "server's accept path are measured too");
ABSL_FLAG(bool, tls, false,
          "TLS on every connection (//ssl): with the embedded server, a self-signed certificate "
          "made in memory at start-up that the clients trust; with --target, verified against "
          "--tls_ca or the system's CAs, or not at all with --tls_insecure");
ABSL_FLAG(std::string, tls_ca, "",
          "with --tls: the PEM file of the CAs that verify the server (default: the system's)");
ABSL_FLAG(bool, tls_insecure, false,
          "with --tls: do not verify the server's certificate or name (testing only)");

namespace loadgen {
namespace {

using gevent::CheckFlagRange;
using gevent::FlagError;

std::string Seconds(absl::Duration d) { return absl::FormatDuration(d); }

}  // namespace

absl::StatusOr<Target> ParseTarget(absl::string_view text) {
  const auto bad = [&](absl::string_view why) {
    return FlagError("--target", text, absl::StrCat("must be HOST:PORT (", why, ")"));
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
  if (port < 1 || port > 65535) return bad("the port must be between 1 and 65535");
  return Target{std::string(host), port};
}

absl::Status Validate(const Config& c) {
  if (absl::Status s = CheckFlagRange("--clients", c.clients, 1, kMaxClients); !s.ok()) return s;
  if (c.duration <= absl::ZeroDuration() || c.duration == absl::InfiniteDuration()) {
    return FlagError("--duration", Seconds(c.duration), "must be positive and finite");
  }
  if (c.warmup < absl::ZeroDuration() || c.warmup == absl::InfiniteDuration()) {
    return FlagError("--warmup", Seconds(c.warmup), "must be zero or positive and finite");
  }
  if (absl::Status s = CheckFlagRange("--message_size", c.message_size, 1, kMaxMessageSize);
      !s.ok()) {
    return s;
  }
  if (c.pipeline < 1) return FlagError("--pipeline", absl::StrCat(c.pipeline), "must be at least 1");
  if (c.protocol_kind() == Protocol::kEcho &&
      static_cast<std::int64_t>(c.pipeline) * c.message_size > kMaxInFlightBytes) {
    return FlagError("--pipeline", absl::StrCat(c.pipeline),
                     absl::StrCat("--pipeline * --message_size (", c.pipeline, " * ",
                                  c.message_size, ") must be at most ", kMaxInFlightBytes,
                                  " bytes in flight per client"));
  }
  if (!c.target.empty()) {
    absl::StatusOr<Target> target = ParseTarget(c.target);
    if (!target.ok()) return target.status();
  }
  if (absl::Status s = CheckFlagRange("--client_threads", c.client_threads, 1, kMaxThreads);
      !s.ok()) {
    return s;
  }
  if (c.client_threads > c.clients) {
    return FlagError("--client_threads", absl::StrCat(c.client_threads),
                     absl::StrCat("must not exceed --clients (", c.clients, ")"));
  }
  if (absl::Status s = CheckFlagRange("--server_threads", c.server_threads, 1, kMaxThreads);
      !s.ok()) {
    return s;
  }
  if (c.connect_timeout <= absl::ZeroDuration()) {
    return FlagError("--connect_timeout", Seconds(c.connect_timeout), "must be positive");
  }
  if (c.response_timeout < absl::ZeroDuration()) {
    return FlagError("--response_timeout", Seconds(c.response_timeout),
                     "must be zero (no limit) or positive");
  }
  if (!(c.rate >= 0) || std::isinf(c.rate)) {  // Also rejects NaN.
    return FlagError("--rate", absl::StrCat(c.rate),
                     "must be 0 (closed loop) or a positive number of messages/s");
  }
  absl::StatusOr<Protocol> protocol = ParseProtocol(c.protocol);
  if (!protocol.ok()) return protocol.status();
  if (*protocol != Protocol::kEcho && c.embedded()) {
    return FlagError("--protocol", c.protocol,
                     "needs --target=HOST:PORT (the embedded server speaks echo only)");
  }
  if (absl::StatusOr<Ratio> r = ParseRatio(c.ratio); !r.ok()) return r.status();
  if (c.keyspace < 1) return FlagError("--keyspace", absl::StrCat(c.keyspace), "must be at least 1");
  if (absl::Status s = CheckFlagRange("--value_size", c.value_size, 1, kMaxValueSize); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckPath(c.path); !s.ok()) return s;
  for (const std::string& h : c.headers) {
    if (absl::StatusOr<std::pair<std::string, std::string>> parsed = ParseHeader(h); !parsed.ok()) {
      return parsed.status();
    }
  }
  if (c.requests_per_connection < 0) {
    return FlagError("--requests_per_connection", absl::StrCat(c.requests_per_connection),
                     "must be 0 (unlimited) or positive");
  }
  if (!c.tls && !c.tls_ca.empty()) return FlagError("--tls_ca", c.tls_ca, "needs --tls");
  if (!c.tls && c.tls_insecure) return FlagError("--tls_insecure", "true", "needs --tls");
  if (c.tls_insecure && !c.tls_ca.empty()) {
    return FlagError("--tls_insecure", "true", "contradicts --tls_ca (verify or not, not both)");
  }
  if (c.embedded() && (c.tls_insecure || !c.tls_ca.empty())) {
    return FlagError(c.tls_insecure ? "--tls_insecure" : "--tls_ca",
                     c.tls_insecure ? "true" : c.tls_ca,
                     "needs --target (the embedded server's certificate is made and trusted in "
                     "memory)");
  }
  return absl::OkStatus();
}

absl::Status CheckArgs(int argc, char** argv) { return gevent::CheckArgs("loadgen", argc, argv); }

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
  c.protocol = absl::GetFlag(FLAGS_protocol);
  c.ratio = absl::GetFlag(FLAGS_ratio);
  c.keyspace = absl::GetFlag(FLAGS_keyspace);
  c.value_size = absl::GetFlag(FLAGS_value_size);
  c.path = absl::GetFlag(FLAGS_path);
  const std::string header = absl::GetFlag(FLAGS_header);
  if (!header.empty()) c.headers = {header};
  c.requests_per_connection = absl::GetFlag(FLAGS_requests_per_connection);
  c.tls = absl::GetFlag(FLAGS_tls);
  c.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  c.tls_insecure = absl::GetFlag(FLAGS_tls_insecure);
  return c;
}

namespace {

gevent::UsageSpec LoadgenUsage() {
  gevent::UsageSpec spec;
  spec.purpose =
      "drives greenlet clients against an echo server and reports throughput, latency and "
      "greenlet switch cost.\n"
      "  loadgen                        # embedded echo server, 1000 clients, 10 s\n"
      "  loadgen --target=HOST:PORT     # an external TCP echo server\n"
      "  loadgen --tls                  # the same over TLS (a certificate made in memory)\n"
      "  loadgen --protocol=redis --target=127.0.0.1:6379 [--ratio=1:10 --pipeline=16]\n"
      "  loadgen --protocol=http --target=127.0.0.1:8080 [--path=/ --header=NAME:VALUE]\n"
      "  loadgen merge A.json B.json    # one report of runs on several machines (merge --help)";
  // This package's flags (abseil's default filter matches files named after the binary, which
  // would hide config.cc's).
  spec.file_part = "loadgen/";
  spec.footer =
      "Exit codes: 0 clean run, 1 the run counted errors, 2 usage error, 3 set-up failure "
      "(target does not resolve or accepts no connection, --json not writable...), 130 / 143 "
      "stopped by SIGINT / SIGTERM (the report of what ran is printed; a second signal exits at "
      "once).";
  return spec;
}

}  // namespace

std::vector<std::string> HeadersFromArgs(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--header") && !absl::ConsumePrefix(&arg, "-header")) continue;
    if (absl::ConsumePrefix(&arg, "=")) {
      out.emplace_back(arg);
    } else if (arg.empty() && i + 1 < argc) {
      out.emplace_back(argv[++i]);
    }
  }
  return out;
}

std::string UsageText() { return gevent::UsageText("loadgen", LoadgenUsage()); }

Config ParseCommandLineOrExit(int argc, char** argv) {
  gevent::ParseFlagsOrExit("loadgen", argc, argv, LoadgenUsage());
  Config config = ConfigFromFlags();
  // --header is repeatable: abseil keeps the last value, so every occurrence is read from argv.
  config.headers = HeadersFromArgs(argc, argv);
  if (absl::Status s = Validate(config); !s.ok()) gevent::ExitWithFlagError("loadgen", s);
  return config;
}

}  // namespace loadgen
