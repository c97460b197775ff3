// libcurl's easy interface (curl_easy_perform) in greenlets after gevent::monkey::PatchAll(),
// against an HTTP server built on this stack in the same process (gevent::StreamServer on a
// loopback port the kernel picks, answering each request after a 0.2 s gevent::Sleep). libcurl
// polls its own non-blocking sockets (poll(2): patched); the address is numeric, so its
// resolver starts no thread.
#include <curl/curl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "hub/spawn.h"
#include "monkey/monkey.h"
#include "monkey/testing/timing.h"
#include "socket/server.h"
#include "socket/socket.h"

namespace {

gevent::SpawnOptions ClientStack() {
  gevent::SpawnOptions options;
  options.stack.size = 512 * 1024;
  return options;
}

// Slow HTTP: reads one request head, sleeps 0.2 s, answers "hello <path>" and closes.
void SlowHttp(gevent::Socket conn, const gevent::SocketAddress& peer) {
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    absl::StatusOr<std::string> chunk = conn.Recv(4096);
    if (!chunk.ok() || chunk->empty()) return;
    request += *chunk;
  }
  const size_t path_begin = request.find(' ') + 1;
  const std::string path = request.substr(path_begin, request.find(' ', path_begin) - path_begin);
  gevent::Sleep(absl::Milliseconds(200));
  const std::string body = absl::StrCat("hello ", path);
  (void)conn.SendAll(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
                                  "Content-Length: ", body.size(),
                                  "\r\nConnection: close\r\n\r\n", body));
}

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct EasyCleanup {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// Get: one curl_easy_perform; the body in *body, the status in *code.
CURLcode Get(const std::string& url, std::string* body, long* code) {
  std::unique_ptr<CURL, EasyCleanup> easy(curl_easy_init());
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy.get(), CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, body);
  const CURLcode result = curl_easy_perform(easy.get());
  curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, code);
  return result;
}

class CurlIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    gevent::monkey::PatchAll();
  }
  static void TearDownTestSuite() { curl_global_cleanup(); }
};

// 50 requests whose responses each take 0.2 s, each in its own greenlet with its own easy
// handle, finish together: about 0.2 s (bound: OverlapBound(), 0.9 s; serially 10 s).
TEST_F(CurlIntegrationTest, FiftySlowRequestsOverlap) {
  gevent::StreamServer server(*gevent::SocketAddress::Parse("127.0.0.1:0"), SlowHttp);
  ASSERT_TRUE(server.Start().ok());
  constexpr int kClients = 50;
  std::vector<std::string> errors;
  int ok = 0;
  std::vector<gevent::GreenletRef> greenlets;
  const absl::Time start = absl::Now();
  absl::Time last_return = start;
  for (int i = 0; i < kClients; ++i) {
    greenlets.push_back(gevent::Spawn(ClientStack(), [&, i] {
      std::string body;
      long code = 0;
      const std::string path = absl::StrCat("/r", i);
      const CURLcode r = Get(absl::StrCat("http://127.0.0.1:", server.port(), path), &body, &code);
      if (r != CURLE_OK) {
        errors.push_back(curl_easy_strerror(r));
      } else if (code != 200 || body != "hello " + path) {
        errors.push_back(absl::StrCat("HTTP ", code, ": ", body));
      } else {
        ++ok;
      }
      last_return = std::max(last_return, absl::Now());
    }));
  }
  ASSERT_TRUE(gevent::JoinAll(greenlets, absl::Seconds(60)));
  const absl::Duration wall = last_return - start;
  server.Stop();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(ok, kClients);
  EXPECT_GE(wall, absl::Milliseconds(200));
  EXPECT_LT(wall, gevent::testing::OverlapBound()) << "50 x 0.2 s requests took " << wall;
  std::printf("50 x curl_easy_perform of a 0.2 s response: %s\n",
              absl::FormatDuration(wall).c_str());
}

// A refused connection is curl's error, at once.
TEST_F(CurlIntegrationTest, ARefusedConnectionIsCurlsError) {
  gevent::StreamServer server(*gevent::SocketAddress::Parse("127.0.0.1:0"), SlowHttp);
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();
  server.Stop();  // Nobody listens there now.
  CURLcode result = CURLE_OK;
  gevent::GreenletRef g = gevent::Spawn(ClientStack(), [&] {
    std::string body;
    long code = 0;
    result = Get(absl::StrCat("http://127.0.0.1:", port, "/"), &body, &code);
  });
  ASSERT_TRUE(g->Join(absl::Seconds(30)));
  EXPECT_EQ(result, CURLE_COULDNT_CONNECT) << curl_easy_strerror(result);
}

}  // namespace
