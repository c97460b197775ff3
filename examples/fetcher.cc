// A concurrent fetcher (gevent's examples/concurrent_download.py): fetches every URL with
// HTTP/1.0 GET, at most --concurrency at once, each within --timeout_ms, and prints one line per
// URL as it finishes: its status line and body size, or its error.
//
//   bazel run //examples:fetcher -- --concurrency=2 http://127.0.0.1:8000/ http://127.0.0.1:8000/a
//
// Each fetch is straight-line blocking code in its own greenlet. The Pool bounds how many run at
// once (Spawn parks while it is full), and a gevent::Timeout bounds each fetch as a whole —
// resolving, connecting, sending and reading — by throwing TimeoutError into its greenlet.
// Exit code: 0 when every URL was fetched, 1 when some failed, 2 for bad arguments.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "examples/args.h"
#include "hub/pool.h"
#include "hub/timeout.h"
#include "socket/resolve.h"

namespace {

struct Url {
  std::string text;
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
};

// ParseUrl: "http://host[:port][/path]", or nullopt.
std::optional<Url> ParseUrl(absl::string_view text) {
  Url url{std::string(text)};
  if (!absl::ConsumePrefix(&text, "http://")) return std::nullopt;
  const size_t slash = text.find('/');
  absl::string_view authority = text.substr(0, slash);
  if (slash != absl::string_view::npos) url.path = std::string(text.substr(slash));
  if (authority.find(':') != absl::string_view::npos) {
    std::optional<std::pair<std::string, uint16_t>> host_port = examples::ParseHostPort(authority);
    if (!host_port.has_value()) return std::nullopt;
    url.host = host_port->first;
    url.port = host_port->second;
  } else {
    url.host = std::string(authority);
  }
  if (url.host.empty()) return std::nullopt;
  return url;
}

// Fetch returns the response's status line and body size, or the error.
absl::StatusOr<std::string> Fetch(const Url& url) {
  absl::StatusOr<gevent::Socket> s = gevent::CreateConnection(url.host, url.port);
  if (!s.ok()) return s.status();
  const std::string request = absl::StrCat("GET ", url.path, " HTTP/1.0\r\nHost: ", url.host,
                                           "\r\nConnection: close\r\n\r\n");
  if (absl::Status sent = s->SendAll(request); !sent.ok()) return sent;
  std::string response;
  char buf[4096];
  for (;;) {  // HTTP/1.0: the server closes after the response.
    absl::StatusOr<size_t> n = s->RecvInto(absl::MakeSpan(buf));
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    response.append(buf, *n);
  }
  const size_t line_end = response.find("\r\n");
  const size_t head_end = response.find("\r\n\r\n");
  if (line_end == std::string::npos || head_end == std::string::npos ||
      !absl::StartsWith(response, "HTTP/")) {
    return absl::DataLossError(absl::StrCat("not an HTTP response (", response.size(), " bytes)"));
  }
  return absl::StrCat(response.substr(0, line_end), ", ", response.size() - head_end - 4,
                      " bytes");
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] = "[--concurrency=N] [--timeout_ms=MS] URL...";
  int concurrency = 4;
  int timeout_ms = 5000;
  std::vector<Url> urls;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--concurrency=")) {
      if (!absl::SimpleAtoi(arg, &concurrency) || concurrency < 1) {
        examples::Usage(argv[0], "--concurrency must be a number >= 1", kUsage);
      }
    } else if (absl::ConsumePrefix(&arg, "--timeout_ms=")) {
      if (!absl::SimpleAtoi(arg, &timeout_ms) || timeout_ms < 1) {
        examples::Usage(argv[0], "--timeout_ms must be a number >= 1", kUsage);
      }
    } else if (std::optional<Url> url = ParseUrl(arg)) {
      urls.push_back(*url);
    } else {
      examples::Usage(argv[0], "not an http:// URL: " + std::string(arg), kUsage);
    }
  }
  if (urls.empty()) examples::Usage(argv[0], "no URL given", kUsage);

  gevent::Pool pool(static_cast<size_t>(concurrency));
  int failed = 0;
  for (const Url& url : urls) {
    pool.Spawn([&url, &failed, timeout_ms] {
      absl::StatusOr<std::string> result;
      try {
        gevent::Timeout timeout(absl::Milliseconds(timeout_ms));
        result = Fetch(url);
      } catch (const gevent::TimeoutError&) {
        result = absl::DeadlineExceededError(absl::StrCat("timed out after ", timeout_ms, "ms"));
      }
      if (!result.ok()) ++failed;
      std::printf("%s: %s\n", url.text.c_str(),
                  result.ok() ? result->c_str() : ("error: " + result.status().ToString()).c_str());
      std::fflush(stdout);
    });
  }
  pool.Join();
  return failed == 0 ? 0 : 1;
}
