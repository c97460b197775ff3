// Runs each example binary as a child process against real peers on loopback: plain blocking
// POSIX sockets in this process, the examples themselves, and Python's http.server (Debian's
// python3) for the fetcher. Every wait is bounded by a poll timeout, so a hung child fails the
// test instead of hanging it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monkey/testing/servers.h"

namespace {

using ::testing::HasSubstr;

constexpr int kWaitMs = 10000;  // The most any one step may take.

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return path;
  return absl::StrCat(srcdir, "/", workspace, "/", path);
}

// Child: a process with its stdout and stderr on pipes; killed and reaped when destroyed.
class Child {
 public:
  Child(const std::string& program, const std::vector<std::string>& args) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      std::vector<char*> argv{const_cast<char*>(program.c_str())};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp(program.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~Child() {
    if (pid_ > 0 && !exit_code_.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(err_);
  }

  // ReadLine: the next line of stdout (without '\n'), or nullopt at end of output or timeout.
  std::optional<std::string> ReadLine() {
    for (;;) {
      if (size_t nl = out_buf_.find('\n'); nl != std::string::npos) {
        std::string line = out_buf_.substr(0, nl);
        out_buf_.erase(0, nl + 1);
        return line;
      }
      if (!ReadMore(out_, &out_buf_)) return std::nullopt;
    }
  }

  // Port: reads lines until one says "listening on HOST:PORT" (or, for Python's http.server,
  // "Serving HTTP on HOST port PORT") and returns the port; 0 if none came.
  int Port() {
    while (std::optional<std::string> line = ReadLine()) {
      int port = 0;
      if (absl::StartsWith(*line, "listening on ") &&
          absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &port)) {
        return port;
      }
      if (absl::StartsWith(*line, "Serving HTTP on ")) {
        const size_t at = line->find(" port ") + 6;
        if (absl::SimpleAtoi(line->substr(at, line->find(' ', at) - at), &port)) return port;
      }
    }
    return 0;
  }

  // Terminate sends SIGTERM (the examples then exit); Finish collects what they said.
  void Terminate() { kill(pid_, SIGTERM); }

  // Finish: all of stdout and stderr, then the exit code (-1 if the child did not exit in time,
  // or was killed by a signal).
  int Finish(std::string* out, std::string* err) {
    while (ReadMore(out_, &out_buf_)) {
    }
    while (ReadMore(err_, &err_buf_)) {
    }
    *out = out_buf_;
    *err = err_buf_;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return *exit_code_;
  }

 private:
  // ReadMore appends what `fd` has within kWaitMs; false at end of file or timeout.
  static bool ReadMore(int fd, std::string* buf) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kWaitMs) <= 0) return false;
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return false;
    buf->append(chunk, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::string out_buf_, err_buf_;
  std::optional<int> exit_code_;
};

// A blocking loopback TCP client, every call bounded by SO_RCVTIMEO / SO_SNDTIMEO.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{kWaitMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void SendAll(int fd, const std::string& data) {
  ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// ReadToEnd: everything until the peer closes (or a read times out: then what came so far, and
// `ended` false).
std::string ReadToEnd(int fd, bool* ended) {
  std::string got;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *ended = n == 0;
      return got;
    }
    got.append(buf, static_cast<size_t>(n));
  }
}

// LoopbackListener: a TCP socket bound to a free loopback port (listening if `listen_backlog`
// > 0); its port in *port.
int LoopbackListener(int listen_backlog, int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (listen_backlog > 0 && listen(fd, listen_backlog) != 0) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::abort();
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// ClosedPort: a loopback port nobody listens on (bound, noted, closed).
int ClosedPort() {
  int port = 0;
  close(LoopbackListener(0, &port));
  return port;
}

// ExpectUsageError: the program exits with 2 and a message naming the problem.
void ExpectUsageError(const std::string& program, const std::vector<std::string>& args,
                      const std::string& problem) {
  Child child(Runfile(program), args);
  std::string out, err;
  EXPECT_EQ(child.Finish(&out, &err), 2) << err;
  EXPECT_THAT(err, HasSubstr(problem));
  EXPECT_THAT(err, HasSubstr("usage:"));
}

// ----- echo_server -----

TEST(EchoServerExample, EchoesEveryClientUntilItCloses) {
  Child server(Runfile("examples/echo_server"), {"0"});
  const int port = server.Port();
  ASSERT_GT(port, 0) << "no 'listening on' line";
  const int a = Connect(port);
  const int b = Connect(port);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  SendAll(b, "second client");
  SendAll(a, "first client");
  shutdown(a, SHUT_WR);
  shutdown(b, SHUT_WR);
  bool a_ended = false, b_ended = false;
  EXPECT_EQ(ReadToEnd(a, &a_ended), "first client");
  EXPECT_EQ(ReadToEnd(b, &b_ended), "second client");
  EXPECT_TRUE(a_ended && b_ended) << "the server did not close after the end of stream";
  close(a);
  close(b);
}

TEST(EchoServerExample, BadPortIsAUsageError) {
  ExpectUsageError("examples/echo_server", {"70000"}, "bad port: 70000");
  ExpectUsageError("examples/echo_server", {}, "expected one argument");
}

// ----- port_forwarder -----

TEST(PortForwarderExample, ForwardsBothWaysAndPassesTheCloseOn) {
  Child target(Runfile("examples/echo_server"), {"0"});
  const int target_port = target.Port();
  ASSERT_GT(target_port, 0);
  Child forwarder(Runfile("examples/port_forwarder"),
                  {"0", absl::StrCat("127.0.0.1:", target_port)});
  const int port = forwarder.Port();
  ASSERT_GT(port, 0);
  const int c = Connect(port);
  ASSERT_GE(c, 0);
  const std::string big(200000, 'z');  // More than one socket buffer's worth, each way.
  SendAll(c, "through the forwarder:" + big);
  shutdown(c, SHUT_WR);  // Echo server sees the end, closes; the forwarder passes that back.
  bool ended = false;
  EXPECT_EQ(ReadToEnd(c, &ended), "through the forwarder:" + big);
  EXPECT_TRUE(ended);
  close(c);
}

TEST(PortForwarderExample, ATargetThatRefusesClosesTheClientAndSaysWhy) {
  const int closed_port = ClosedPort();
  Child forwarder(Runfile("examples/port_forwarder"),
                  {"0", absl::StrCat("127.0.0.1:", closed_port)});
  const int port = forwarder.Port();
  ASSERT_GT(port, 0);
  const int c = Connect(port);
  ASSERT_GE(c, 0);
  bool ended = false;
  EXPECT_EQ(ReadToEnd(c, &ended), "");
  EXPECT_TRUE(ended);
  close(c);
  forwarder.Terminate();
  std::string out, err;
  forwarder.Finish(&out, &err);
  EXPECT_THAT(err, HasSubstr("Connection refused [ECONNREFUSED]"));
}

TEST(PortForwarderExample, BadArgumentsAreUsageErrors) {
  ExpectUsageError("examples/port_forwarder", {"0", "no-port-here"}, "bad target");
  ExpectUsageError("examples/port_forwarder", {"x", "127.0.0.1:1"}, "bad port: x");
}

// ----- fetcher -----

TEST(FetcherExample, FetchesConcurrentlyAndReportsEachFailure) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string root = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/fetcher_root");
  ASSERT_EQ(system(("mkdir -p " + root).c_str()), 0);
  std::ofstream(root + "/a.txt") << std::string(100, 'a');
  std::ofstream(root + "/b.txt") << "bbbbb";

  Child http("python3",
             {"-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", root, "0"});
  const int http_port = http.Port();
  ASSERT_GT(http_port, 0) << "Python's http.server did not start: install Debian's python3";

  // A server that accepts (the kernel does, into the backlog) and never answers, and a port
  // that refuses.
  int silent_port = 0;
  const int silent = LoopbackListener(8, &silent_port);
  const int closed_port = ClosedPort();

  const std::string base = absl::StrCat("http://127.0.0.1:", http_port);
  const std::string silent_url = absl::StrCat("http://127.0.0.1:", silent_port, "/");
  const std::string closed_url = absl::StrCat("http://127.0.0.1:", closed_port, "/");
  Child fetcher(Runfile("examples/fetcher"),
                {"--concurrency=2", "--timeout_ms=300", base + "/a.txt", silent_url,
                 base + "/b.txt", base + "/missing", closed_url});
  std::string out, err;
  EXPECT_EQ(fetcher.Finish(&out, &err), 1) << out << err;  // Some URLs failed.
  EXPECT_THAT(out, HasSubstr(base + "/a.txt: HTTP/1.0 200 OK, 100 bytes"));
  EXPECT_THAT(out, HasSubstr(base + "/b.txt: HTTP/1.0 200 OK, 5 bytes"));
  EXPECT_THAT(out, HasSubstr(base + "/missing: HTTP/1.0 404"));
  EXPECT_THAT(out, HasSubstr(closed_url + ": error: UNAVAILABLE"));
  EXPECT_THAT(out, HasSubstr("[ECONNREFUSED]"));
  EXPECT_THAT(out, HasSubstr(silent_url + ": error: DEADLINE_EXCEEDED: timed out after 300ms"));
  close(silent);
}

TEST(FetcherExample, BadArgumentsAreUsageErrors) {
  ExpectUsageError("examples/fetcher", {"ftp://x/"}, "not an http:// URL: ftp://x/");
  ExpectUsageError("examples/fetcher", {"--concurrency=0", "http://x/"}, "--concurrency");
  ExpectUsageError("examples/fetcher", {}, "no URL given");
}

// ----- udp_server -----

TEST(UdpServerExample, AnswersEachDatagram) {
  Child server(Runfile("examples/udp_server"), {"0"});
  const int port = server.Port();
  ASSERT_GT(port, 0);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{kWaitMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (const std::string msg : {"ping", "pong"}) {
    ASSERT_EQ(sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
              static_cast<ssize_t>(msg.size()));
    char buf[64];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "no reply";
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "echo: " + msg);
  }
  close(fd);
}

TEST(UdpServerExample, BadPortIsAUsageError) {
  ExpectUsageError("examples/udp_server", {"-1"}, "bad port: -1");
}

// ----- redis_postgres_fanout -----

TEST(RedisPostgresFanoutExample, PrintsBothAnswers) {
  auto redis = gevent::testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto pg = gevent::testing::PostgresServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  for (const char* visits : {"1", "2"}) {
    Child fanout(Runfile("examples/redis_postgres_fanout"),
                 {"--redis=" + (*redis)->socket_path(), "--pg=" + (*pg)->conninfo(), "alice"});
    std::string out, err;
    EXPECT_EQ(fanout.Finish(&out, &err), 0) << out << err;
    EXPECT_THAT(out, HasSubstr(absl::StrCat("redis: visits:alice = ", visits)));
    EXPECT_THAT(out, HasSubstr("postgres: hello, alice (15."));
    EXPECT_THAT(out, HasSubstr("both answered in"));
  }
}

TEST(RedisPostgresFanoutExample, AnUnreachableServerIsReportedNotHung) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string nowhere = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/no-such.sock");
  Child fanout(Runfile("examples/redis_postgres_fanout"),
               {"--redis=" + nowhere, "--pg=host=/nonexistent-dir connect_timeout=5"});
  std::string out, err;
  EXPECT_EQ(fanout.Finish(&out, &err), 1) << out << err;
  EXPECT_THAT(out, HasSubstr("redis: error: UNAVAILABLE"));
  EXPECT_THAT(out, HasSubstr("postgres: error: UNAVAILABLE"));
}

TEST(RedisPostgresFanoutExample, MissingFlagsAreUsageErrors) {
  ExpectUsageError("examples/redis_postgres_fanout", {"--pg=x"}, "--redis is required");
  ExpectUsageError("examples/redis_postgres_fanout", {"--redis=/x"}, "--pg is required");
}

// ----- the README's program -----

TEST(ModelExample, PrintsEachEchoThenEachTimeout) {
  Child model(Runfile("examples/model"), {});
  std::string out, err;
  EXPECT_EQ(model.Finish(&out, &err), 0) << err;
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(out, HasSubstr(absl::StrCat("client ", i, " got 'hello ", i, "'")));
    EXPECT_THAT(out, HasSubstr(absl::StrCat("client ", i, ": DEADLINE_EXCEEDED")));
  }
}

TEST(ModelExample, IsTheReadmesProgram) {
  std::ifstream readme_file(Runfile("README.md"));
  std::ifstream model_file(Runfile("examples/model.cc"));
  ASSERT_TRUE(readme_file && model_file);
  std::stringstream readme, model;
  readme << readme_file.rdbuf();
  model << model_file.rdbuf();
  const std::string r = readme.str();
  const size_t begin = r.find("```cpp\n");
  ASSERT_NE(begin, std::string::npos);
  const size_t end = r.find("```", begin + 7);
  const std::string code = r.substr(begin + 7, end - begin - 7);
  EXPECT_TRUE(absl::EndsWith(model.str(), code))
      << "examples/model.cc and the README's program differ; keep them the same";
}

}  // namespace
