#include "loadgen/run.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "loadgen/calibrate.h"
#include "loadgen/client.h"
#include "loadgen/fd_limit.h"
#include "loadgen/protocol.h"
#include "socket/address.h"
#include "socket/echo.h"
#include "ssl/certificate.h"
#include "ssl/context.h"
#include "ssl/echo.h"
#include "ssl/server.h"

namespace loadgen {
namespace {

// Totals: the client threads' counters summed at one tick.
struct Totals {
  ThreadSnapshot sum;
  Histogram latency;
  Histogram uncorrected;
  Histogram connect;
};

// Sampler takes the per-thread snapshots and merges the interval histograms.
class Sampler {
 public:
  explicit Sampler(std::vector<std::unique_ptr<ClientThread>>& threads) : threads_(threads) {}

  // Take: cumulative counters now, and the latencies recorded since the previous Take.
  void Take(Totals* out) {
    out->sum = ThreadSnapshot();
    out->latency.Reset();
    out->uncorrected.Reset();
    out->connect.Reset();
    for (auto& t : threads_) {
      scratch_latency_.Reset();
      scratch_uncorrected_.Reset();
      scratch_connect_.Reset();
      const ThreadSnapshot s = t->counters().TakeInterval(&scratch_latency_, &scratch_uncorrected_,
                                                          &scratch_connect_);
      out->sum.connects += s.connects;
      for (std::size_t k = 0; k < kCountCount; ++k) out->sum.counts[k] += s.counts[k];
      out->connect.Merge(scratch_connect_);
      out->sum.messages += s.messages;
      out->sum.bytes += s.bytes;
      out->sum.switches += s.switches;
      out->sum.loop_iterations += s.loop_iterations;
      out->sum.callbacks_run += s.callbacks_run;
      out->sum.active += s.active;
      for (std::size_t k = 0; k < kErrorKindCount; ++k) out->sum.errors[k] += s.errors[k];
      out->latency.Merge(scratch_latency_);
      out->uncorrected.Merge(scratch_uncorrected_);
    }
  }

 private:
  std::vector<std::unique_ptr<ClientThread>>& threads_;
  Histogram scratch_latency_;
  Histogram scratch_uncorrected_;
  Histogram scratch_connect_;
};

std::uint64_t Connects(std::vector<std::unique_ptr<ClientThread>>& threads) {
  std::uint64_t total = 0;
  for (auto& t : threads) total += t->counters().Connects();
  return total;
}

std::string LastConnectError(std::vector<std::unique_ptr<ClientThread>>& threads) {
  std::string last;
  for (auto& t : threads) {
    std::string e = t->counters().LastConnectError();
    if (!e.empty()) last = std::move(e);
  }
  return last;
}

// ResolveTarget: getaddrinfo once, at start-up, so a name that does not resolve stops the run
// with the resolver's own text instead of failing every connect.
absl::StatusOr<std::vector<gevent::SocketAddress>> ResolveTarget(const Config& config,
                                                                 const Target& target) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const std::string port = absl::StrCat(target.port);
  const int rc = getaddrinfo(target.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    const char* why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return absl::NotFoundError(absl::StrCat("--target=", config.target, ": ", why));
  }
  std::vector<gevent::SocketAddress> out;
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    out.push_back(gevent::SocketAddress::FromSockaddr(a->ai_addr, a->ai_addrlen));
  }
  freeaddrinfo(list);
  if (out.empty()) return absl::NotFoundError(absl::StrCat("--target=", config.target, ": no address"));
  return out;
}

// A second SIGINT / SIGTERM (or one after the measured window) ends the process at once.
void ExitAtOnce(int signal) { _exit(128 + signal); }

// SignalStop: the first SIGINT or SIGTERM ends the run early (run.h). Blocked in the calling
// thread before any other thread exists, so every thread inherits the mask and the signal waits
// for the main thread's sigtimedwait between ticks. The handler (installed explicitly: a run
// started from a script may inherit SIGINT ignored, and an ignored signal is never pending) only
// runs once Unblock() is called.
class SignalStop {
 public:
  explicit SignalStop(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    struct sigaction action {};
    action.sa_handler = ExitAtOnce;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
  }

  // WaitUntil sleeps until `deadline` or a signal; returns the signal's number, or 0.
  int WaitUntil(absl::Time deadline) {
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return 0;
      if (!enabled_) {
        absl::SleepFor(left);
        continue;
      }
      const timespec ts = absl::ToTimespec(left);
      const int signal = sigtimedwait(&set_, nullptr, &ts);
      if (signal > 0) return signal;
      // EAGAIN: the time is up (checked above); EINTR: another signal's handler ran.
    }
  }

  // Unblock: from now on a signal runs ExitAtOnce in this thread.
  void Unblock() {
    if (enabled_) pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }

 private:
  const bool enabled_;
  sigset_t set_;
};

double ClientCpuSeconds(std::vector<std::unique_ptr<ClientThread>>& threads) {
  double total = 0;
  for (auto& t : threads) total += std::max(ThreadCpuSeconds(t->native_handle()), 0.0);
  return total;
}

}  // namespace

absl::StatusOr<RunResult> RunLoad(const Config& config, const RunOptions& options) {
  SignalStop signals(options.handle_signals);
  RunResult result;
  result.seconds_asked = absl::ToDoubleSeconds(config.duration);
  result.clients = config.clients;
  result.client_threads = config.client_threads;
  result.message_size = config.message_size;
  result.pipeline = config.pipeline;
  result.rate = config.rate;
  ClientOptions client_options;
  if (!config.embedded()) {
    absl::StatusOr<Target> target = ParseTarget(config.target);
    if (!target.ok()) return target.status();
    absl::StatusOr<std::vector<gevent::SocketAddress>> addresses = ResolveTarget(config, *target);
    if (!addresses.ok()) return addresses.status();
    client_options.addresses = std::move(*addresses);
    client_options.host = target->host;
    client_options.port = target->port;
    client_options.tls_server_name = target->host;
    result.server = config.target;
    result.server_threads = 0;
  }
  if (options.calibrate) {
    result.ns_per_switch = MeasureSwitchNs();
    result.ns_per_yield = MeasureYieldNs();
  }

  // --tls: the embedded server's certificate is made here, in memory, and is the one CA its
  // clients trust; against a --target, --tls_ca, the system's CAs, or nothing (--tls_insecure).
  std::shared_ptr<gevent::SslContext> server_tls;
  if (config.tls) {
    gevent::SslContextOptions client_tls;
    if (config.embedded()) {
      absl::StatusOr<gevent::Certificate> cert = gevent::MakeSelfSignedCertificate();
      if (!cert.ok()) return cert.status();
      gevent::SslContextOptions server_options;
      server_options.role = gevent::SslRole::kServer;
      server_options.cert_chain_pem = cert->certificate_pem;
      server_options.key_pem = cert->private_key_pem;
      absl::StatusOr<std::shared_ptr<gevent::SslContext>> made =
          gevent::SslContext::Create(server_options);
      if (!made.ok()) return made.status();
      server_tls = *std::move(made);
      client_tls.ca_pem = cert->certificate_pem;
      client_tls.use_default_ca_store = false;
    } else if (config.tls_insecure) {
      client_tls.verify_peer = false;
      client_tls.check_hostname = false;
    } else {
      client_tls.ca_file = config.tls_ca;
    }
    // AES-128-GCM first (OpenSSL's default puts AES-256 first): the same protection level as
    // most servers pick, and a cheaper record.
    client_tls.ciphersuites =
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
    absl::StatusOr<std::shared_ptr<gevent::SslContext>> made =
        gevent::SslContext::Create(client_tls);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          config.tls_ca.empty()
                              ? absl::StrCat("--tls: ", made.status().message())
                              : absl::StrCat("--tls_ca=", config.tls_ca, ": ",
                                             made.status().message()));
    }
    client_options.tls = *std::move(made);
  }

  std::unique_ptr<gevent::EchoServer> server;
  if (config.embedded()) {
    gevent::EchoServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    server_options.threads = static_cast<std::size_t>(config.server_threads);
    server_options.backlog = 4096;  // The kernel caps it at net.core.somaxconn.
    if (server_tls != nullptr) {
      gevent::SslServerOptions tls;
      tls.context = server_tls;
      tls.handshake_timeout = config.connect_timeout;
      server_options.make_handler = gevent::MakeSslEchoHandlerFactory(tls);
    }
    server = std::make_unique<gevent::EchoServer>(server_options);
    if (absl::Status s = server->Start(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("starting the embedded echo server: ", s.message()));
    }
    client_options.host = "127.0.0.1";
    client_options.port = server->port();
    client_options.addresses = {
        gevent::SocketAddress::Loopback(static_cast<std::uint16_t>(server->port()))};
    result.server = absl::StrCat("embedded echo server 127.0.0.1:", server->port());
    client_options.tls_server_name = "127.0.0.1";  // The certificate names 127.0.0.1.
    result.server_threads = config.server_threads;
  }
  client_options.protocol = config.protocol_kind();
  result.protocol = ProtocolName(client_options.protocol);
  if (config.tls) absl::StrAppend(&result.server, " (TLS)");
  if (absl::StatusOr<Ratio> ratio = ParseRatio(config.ratio); ratio.ok()) {
    client_options.ratio = *ratio;
  }
  if (client_options.protocol == Protocol::kRedis) {
    result.ratio = absl::StrCat(client_options.ratio.sets, ":", client_options.ratio.gets);
    result.keyspace = config.keyspace;
    result.value_size = config.value_size;
  } else if (client_options.protocol == Protocol::kHttp) {
    result.path = config.path;
  }
  client_options.keyspace = static_cast<std::uint64_t>(config.keyspace);
  client_options.value_size = static_cast<std::size_t>(config.value_size);
  client_options.requests_per_connection =
      static_cast<std::uint64_t>(config.requests_per_connection);
  if (client_options.protocol == Protocol::kHttp) {
    std::vector<std::pair<std::string, std::string>> headers;
    for (const std::string& h : config.headers) {
      absl::StatusOr<std::pair<std::string, std::string>> parsed = ParseHeader(h);
      if (!parsed.ok()) return parsed.status();
      headers.push_back(std::move(*parsed));
    }
    client_options.http_request = HttpRequest(config.path, config.target, headers);
  }
  client_options.message_size = static_cast<std::size_t>(config.message_size);
  client_options.pipeline = config.pipeline;
  client_options.rate_per_client = config.rate / config.clients;
  client_options.connect_timeout = config.connect_timeout;
  client_options.response_timeout = config.response_timeout;
  client_options.total_clients = config.clients;
  // Connections between connect and first echo stay below the listen backlog (somaxconn is 4096
  // on the target machines), shared among the client threads.
  client_options.max_connecting = std::max(64, 2048 / config.client_threads);

  const MessagePattern pattern(static_cast<std::size_t>(config.message_size));
  const absl::Time start = absl::Now();
  // Open loop: sending starts after the warm-up's first half, so the connections are made first.
  client_options.schedule_start_ns = MonotonicNanos() + absl::ToInt64Nanoseconds(config.warmup / 2);

  std::vector<std::unique_ptr<ClientThread>> threads;
  int next_client = 0;
  for (int t = 0; t < config.client_threads; ++t) {
    // Spread the remainder over the first threads.
    const int count =
        config.clients / config.client_threads + (t < config.clients % config.client_threads);
    threads.push_back(
        std::make_unique<ClientThread>(client_options, pattern, next_client, count));
    next_client += count;
  }
  for (auto& t : threads) t->Start();

  std::FILE* progress = config.progress ? options.progress : nullptr;
  Sampler sampler(threads);
  Totals previous;
  Totals now;
  sampler.Take(&previous);
  absl::Time previous_time = start;

  // Ticks: every whole second of the warm-up, its end, every whole second of the measured
  // window, and its end.
  const absl::Time measure_start = start + config.warmup;
  const absl::Time end = measure_start + config.duration;
  std::vector<absl::Time> ticks;
  for (int k = 1; start + absl::Seconds(k) < measure_start; ++k) ticks.push_back(start + absl::Seconds(k));
  if (measure_start > start) ticks.push_back(measure_start);
  for (int k = 1; measure_start + absl::Seconds(k) < end; ++k) {
    ticks.push_back(measure_start + absl::Seconds(k));
  }
  ticks.push_back(end);

  // The baseline: counters and CPU clocks when measuring starts.
  Totals baseline;
  absl::Time baseline_time = start;
  double cpu_clients_start = ClientCpuSeconds(threads);
  double cpu_process_start = ProcessCpuSeconds();
  double cpu_main_start = ThisThreadCpuSeconds();
  baseline.sum = previous.sum;

  // Stops the clients (they drain, run.h) and the server.
  const auto stop_all = [&] {
    for (auto& t : threads) t->Stop();
    for (auto& t : threads) t->Join();
    // The clients have closed their connections, so the handlers are ending on their own; the
    // grace period lets them finish rather than be killed (see the report: a zero-grace stop has
    // left handler stacks behind at thread exit under the sanitizers).
    if (server) {
      server->Stop(absl::Seconds(1));
      result.server_connection_errors = static_cast<std::int64_t>(server->stats().errors);
    }
  };

  // The dead-target rule: no connection at all within --connect_timeout ends the run.
  const absl::Time connect_check = start + config.connect_timeout;
  bool connect_checked = false;
  int signal = 0;
  for (const absl::Time tick : ticks) {
    for (;;) {
      const absl::Time until = connect_checked ? tick : std::min(tick, connect_check);
      signal = signals.WaitUntil(until);
      if (signal != 0) break;
      if (!connect_checked && absl::Now() >= connect_check) {
        connect_checked = true;
        if (Connects(threads) == 0) {
          std::string why = LastConnectError(threads);
          if (why.empty()) why = "no connect finished";
          signals.Unblock();
          stop_all();
          return absl::UnavailableError(absl::StrCat("no connection to ", result.server, " within ",
                                                     absl::FormatDuration(config.connect_timeout),
                                                     ": ", why));
        }
      }
      if (absl::Now() >= tick) break;
    }
    const absl::Time tick_time = absl::Now();
    sampler.Take(&now);
    // An interrupted tick is the last one, at the signal's time.
    const bool warmup = signal != 0 ? tick_time < measure_start : tick <= measure_start;
    IntervalStats interval;
    interval.seconds = absl::ToDoubleSeconds(tick_time - previous_time);
    interval.elapsed_s = absl::ToDoubleSeconds(tick_time - measure_start);
    interval.warmup = warmup;
    interval.warmup_elapsed_s = absl::ToDoubleSeconds(tick_time - start);
    interval.messages = now.sum.messages - previous.sum.messages;
    interval.bytes = now.sum.bytes - previous.sum.bytes;
    interval.p50_ns = now.latency.Percentile(50);
    interval.p99_ns = now.latency.Percentile(99);
    interval.max_ns = now.latency.max();
    interval.active_clients = now.sum.active;
    interval.errors = TotalErrors(now.sum.errors) - TotalErrors(previous.sum.errors);
    if (progress != nullptr) {
      std::fprintf(progress, "%s\n", FormatProgressLine(interval).c_str());
      std::fflush(progress);
    }
    if (!warmup) {
      result.series.push_back(interval);
      result.latency.Merge(now.latency);
      result.uncorrected.Merge(now.uncorrected);
      result.connect_latency.Merge(now.connect);
    }
    std::swap(previous, now);
    previous_time = tick_time;
    // Interrupted during the warm-up: the measured window is empty (the baseline is now).
    if (tick == measure_start || (signal != 0 && warmup)) {
      baseline.sum = previous.sum;
      baseline_time = tick_time;
      cpu_clients_start = ClientCpuSeconds(threads);
      cpu_process_start = ProcessCpuSeconds();
      cpu_main_start = ThisThreadCpuSeconds();
    }
    if (signal != 0) break;
  }
  // The measured window is over: from here a signal ends the process at once.
  signals.Unblock();
  result.interrupted = signal != 0;
  result.signal = signal;

  // Final figures, before stopping anything.
  const double cpu_clients = ClientCpuSeconds(threads) - cpu_clients_start;
  const double cpu_process = ProcessCpuSeconds() - cpu_process_start;
  const double cpu_main = ThisThreadCpuSeconds() - cpu_main_start;
  result.seconds = absl::ToDoubleSeconds(previous_time - baseline_time);
  result.messages = previous.sum.messages - baseline.sum.messages;
  result.bytes = previous.sum.bytes - baseline.sum.bytes;
  result.switches = previous.sum.switches - baseline.sum.switches;
  result.loop_iterations = previous.sum.loop_iterations - baseline.sum.loop_iterations;
  result.callbacks_run = previous.sum.callbacks_run - baseline.sum.callbacks_run;
  for (std::size_t k = 0; k < kErrorKindCount; ++k) {
    result.errors[k] = previous.sum.errors[k] - baseline.sum.errors[k];
  }
  for (std::size_t k = 0; k < kCountCount; ++k) {
    result.counts[k] = previous.sum.counts[k] - baseline.sum.counts[k];
  }
  result.connects = previous.sum.connects - baseline.sum.connects;
  result.connected_clients = previous.sum.active;
  result.client_cpu_seconds = cpu_clients;
  if (server) result.server_cpu_seconds = std::max(cpu_process - cpu_clients - cpu_main, 0.0);

  stop_all();
  // The whole run's counts, now that no client sends any more.
  sampler.Take(&now);
  result.whole_run = now.sum.counts;
  for (auto& t : threads) {
    if (result.first_server_error.empty()) {
      result.first_server_error = t->counters().FirstErrorText(ErrorKind::kServerError);
    }
    if (result.first_malformed.empty()) {
      result.first_malformed = t->counters().FirstErrorText(ErrorKind::kMalformed);
    }
  }
  return result;
}

int ExitCodeFor(const RunResult& result) {
  return TotalErrors(result.errors) == 0 && result.messages > 0 ? kExitOk : kExitRunErrors;
}

int ExitCodeForSignal(int signal) { return kExitInterruptedBase + signal; }

absl::Status CheckJsonPath(const std::string& path) {
  // Created (or truncated) now, so an unwritable path is found before the run, not after it.
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--json=", path, ": ", std::strerror(errno)));
  }
  std::fclose(f);
  return absl::OkStatus();
}

int Main(const Config& config) {
  if (!config.json_path.empty()) {
    if (absl::Status s = CheckJsonPath(config.json_path); !s.ok()) {
      std::fprintf(stderr, "loadgen: %s\n", std::string(s.message()).c_str());
      return kExitSetupFailed;
    }
  }
  if (absl::Status s = EnsureFdLimit(static_cast<std::uint64_t>(config.clients), config.embedded());
      !s.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(s.message()).c_str());
    return kExitSetupFailed;
  }
  RunOptions options;
  options.progress = stdout;
  options.handle_signals = true;
  absl::StatusOr<RunResult> result = RunLoad(config, options);
  if (!result.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(result.status().message()).c_str());
    return kExitSetupFailed;
  }
  std::fputs(FormatReport(*result).c_str(), stdout);
  std::fflush(stdout);
  if (!config.json_path.empty()) {
    if (absl::Status s = WriteFile(config.json_path, ToJson(*result)); !s.ok()) {
      std::fprintf(stderr, "loadgen: --json: %s\n", std::string(s.message()).c_str());
      return kExitSetupFailed;
    }
  }
  if (result->interrupted) return ExitCodeForSignal(result->signal);
  const int code = ExitCodeFor(*result);
  if (code != kExitOk) {
    std::fprintf(stderr, "loadgen: %s\n",
                 TotalErrors(result->errors) > 0 ? "errors during the run (see the report)"
                                                 : "no message completed");
  }
  return code;
}

}  // namespace loadgen
