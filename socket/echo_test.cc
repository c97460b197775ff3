#include "socket/echo.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
#include "socket/server.h"
#include "socket/resolve.h"
#include "socket/socket.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

class EchoTest : public HubTestFixture {
 protected:
  void StartServer(EchoOptions echo = {}) {
    stats_ = std::make_shared<EchoStats>();
    server_ = std::make_unique<StreamServer>(SocketAddress::Loopback(0),
                                             MakeEchoHandler(stats_, echo));
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop(absl::ZeroDuration());
    server_.reset();
    HubTestFixture::TearDown();
  }
  Socket Connect() {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", server_->port(), absl::Seconds(30));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : Socket();
  }

  std::shared_ptr<EchoStats> stats_;
  std::unique_ptr<StreamServer> server_;
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4099) & 0xff);
  return s;
}

// Reads until the end of the stream.
std::string ReadAll(Socket& s) {
  std::string out;
  char buf[65536];
  for (;;) {
    absl::StatusOr<size_t> n = s.RecvInto(absl::MakeSpan(buf));
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) return out;
    out.append(buf, *n);
  }
}

TEST_F(EchoTest, EchoesAOneMebibyteMessageSentWhileReading) {
  StartServer();
  Socket c = Connect();
  const std::string message = Pattern(1 << 20);
  // Writing 1 MiB before reading would deadlock once every buffer is full (the server does not
  // buffer without bound), so a second greenlet writes.
  GreenletRef writer = Spawn([&] {
    ASSERT_TRUE(c.SendAll(message).ok());
    ASSERT_TRUE(c.Shutdown(SHUT_WR).ok());
  });
  const std::string back = ReadAll(c);
  writer->Join();
  ASSERT_EQ(back.size(), message.size());
  EXPECT_TRUE(back == message);
  EXPECT_EQ(stats_->Snapshot().bytes, message.size());
  EXPECT_EQ(stats_->Snapshot().connections, 1u);
  EXPECT_EQ(stats_->Snapshot().errors, 0u);
}

TEST_F(EchoTest, HalfCloseGetsEverythingBackThenTheEnd) {
  StartServer();
  Socket c = Connect();
  ASSERT_TRUE(c.SendAll("part one, ").ok());
  ASSERT_TRUE(c.SendAll("part two").ok());
  ASSERT_TRUE(c.Shutdown(SHUT_WR).ok());
  EXPECT_EQ(ReadAll(c), "part one, part two");  // Ends: the server closed after echoing.
}

TEST_F(EchoTest, ClientThatStopsReadingIsHeldBackNotBuffered) {
  // Small, fixed kernel buffers on both ends, so that what can be in flight is known. (Receive
  // buffers stay above the loopback MSS: smaller ones make TCP crawl on persist timers.)
  constexpr int kSend = 16 * 1024;
  constexpr int kReceive = 128 * 1024;
  auto stats = std::make_shared<EchoStats>();
  EchoOptions echo;
  echo.buffer_size = 4096;
  StreamHandler handler = MakeEchoHandler(stats, echo);
  server_ = std::make_unique<StreamServer>(
      SocketAddress::Loopback(0), [handler](Socket conn, const SocketAddress& peer) {
        ASSERT_TRUE(conn.SetSendBufferSize(kSend).ok());
        ASSERT_TRUE(conn.SetReceiveBufferSize(kReceive).ok());
        handler(std::move(conn), peer);
      });
  ASSERT_TRUE(server_->Start().ok());
  absl::StatusOr<Socket> c = Socket::Create(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(c->SetSendBufferSize(kSend).ok());
  ASSERT_TRUE(c->SetReceiveBufferSize(kReceive).ok());
  ASSERT_TRUE(c->Connect(server_->address()).ok());
  // Send without reading until the sends time out: the server stops reading once its replies
  // cannot go out. What it took is bounded by the buffers (the kernel doubles each: ~300 KiB
  // here, plus the server's 4 KiB), not by the 64 MiB offered.
  const std::string chunk = Pattern(64 * 1024);
  size_t sent = 0;
  std::string expected;
  for (int i = 0; i < 1024; ++i) {
    absl::StatusOr<size_t> n = c->Send(chunk, absl::Milliseconds(50));
    if (!n.ok()) {
      ASSERT_TRUE(absl::IsDeadlineExceeded(n.status())) << n.status();
      break;
    }
    sent += *n;
    expected.append(chunk.data(), *n);
  }
  EXPECT_LT(sent, 1u << 20) << "the server kept reading from a client that does not read";
  EXPECT_GT(sent, 0u);
  // The client reads again: everything it sent comes back.
  ASSERT_TRUE(c->Shutdown(SHUT_WR).ok());
  const std::string back = ReadAll(*c);
  EXPECT_EQ(back.size(), sent);
  EXPECT_TRUE(back == expected);
}

TEST_F(EchoTest, ResetMidMessageEndsOnlyThatConnection) {
  StartServer();
  {
    Socket c = Connect();
    const std::string half = Pattern(300 * 1024);
    ASSERT_TRUE(c.Send(half).ok());
    // SO_LINGER with a zero timeout: close sends a reset, dropping what is unsent.
    struct linger l = {1, 0};
    ASSERT_EQ(setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
  }
  Socket other = Connect();
  ASSERT_TRUE(other.SendAll("still serving").ok());
  char buf[13];
  ASSERT_TRUE(other.RecvExactly(absl::MakeSpan(buf)).ok());
  EXPECT_EQ(std::string(buf, 13), "still serving");
  // The reset connection's handler ended with an error, without taking the server down.
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (stats_->Snapshot().errors == 0 && absl::Now() < end) Sleep(absl::Milliseconds(1));
  EXPECT_EQ(stats_->Snapshot().errors, 1u);
  EXPECT_EQ(stats_->Snapshot().connections, 2u);
}

TEST_F(EchoTest, EchoConnectionRejectsAZeroBuffer) {
  absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
  EchoOptions echo;
  echo.buffer_size = 0;
  absl::Status s = EchoConnection(pair->first, nullptr, echo);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("buffer_size must be > 0"));
}

// EchoServer runs on threads of its own; the test's hub is only the client.
TEST_F(EchoTest, EchoServerOnItsOwnThreads) {
  EchoServerOptions options;
  options.threads = 2;
  EchoServer echo(options);
  ASSERT_TRUE(echo.Start().ok());
  ASSERT_NE(echo.port(), 0);
  std::vector<Socket> clients;
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", echo.port(), absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
    clients.push_back(std::move(*c));
  }
  for (Socket& c : clients) {
    ASSERT_TRUE(c.SendAll("0123456789").ok());
    ASSERT_TRUE(c.Shutdown(SHUT_WR).ok());
    EXPECT_EQ(ReadAll(c), "0123456789");
  }
  echo.Stop();
  EXPECT_EQ(echo.server_stats().accepted, 8u);
  EXPECT_EQ(echo.stats().connections, 8u);
  EXPECT_EQ(echo.stats().bytes, 80u);
}

// The load generator's report: clients that pipeline a few messages and close, then Stop with a
// zero grace right away. The handlers still running (or only just finished) must all be killed
// and unwound before the server thread's hub goes: a handler greenlet left on its stack at thread
// exit would be reported by the stack pool and crash the exit under the sanitizers.
TEST_F(EchoTest, EchoServerStopWithZeroGraceRightAfterClientsCloseUnwindsEveryHandler) {
  constexpr int kClients = 20;
  constexpr int kPipelined = 4;
  const std::string message = Pattern(1000);
  for (int round = 0; round < 5; ++round) {
    EchoServerOptions options;
    options.threads = 1;
    auto echo = std::make_unique<EchoServer>(options);
    ASSERT_TRUE(echo->Start().ok());
    std::vector<Socket> clients;
    for (int i = 0; i < kClients; ++i) {
      absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", echo->port(), absl::Seconds(30));
      ASSERT_TRUE(c.ok()) << c.status();
      clients.push_back(std::move(*c));
    }
    for (Socket& c : clients) {
      for (int m = 0; m < kPipelined; ++m) ASSERT_TRUE(c.SendAll(message).ok());
    }
    // Every client gets its first message back, so every handler is running (parked in a read
    // or a send) when the clients close.
    for (Socket& c : clients) {
      std::string back(message.size(), '\0');
      ASSERT_TRUE(c.RecvExactly(absl::MakeSpan(back), absl::Seconds(30)).ok());
      EXPECT_TRUE(back == message);
    }
    for (Socket& c : clients) ASSERT_TRUE(c.Close().ok());
    echo->Stop(absl::ZeroDuration());
    EXPECT_EQ(echo->server_stats().active, 0u);
    EXPECT_EQ(echo->server_stats().accepted, static_cast<uint64_t>(kClients));
    echo.reset();
  }
}

// Threads of this process, from /proc.
int ThreadCount(pid_t pid) {
  FILE* status = std::fopen(absl::StrCat("/proc/", pid, "/status").c_str(), "r");
  if (status == nullptr) return -1;
  char line[256];
  int threads = -1;
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::sscanf(line, "Threads: %d", &threads) == 1) break;
  }
  std::fclose(status);
  return threads;
}

// on_calling_thread: the server is a StreamServer on the test's own hub, so the clients and the
// handlers take turns on one thread, and Start makes no thread.
TEST_F(EchoTest, EchoServerOnTheCallingThreadServesOnItsHub) {
  EchoServerOptions options;
  options.on_calling_thread = true;
  EchoServer echo(options);
  const int threads_before = ThreadCount(getpid());
  ASSERT_TRUE(echo.Start().ok());
  EXPECT_EQ(ThreadCount(getpid()), threads_before);
  ASSERT_NE(echo.port(), 0);
  EXPECT_EQ(echo.address().port(), echo.port());
  std::vector<Socket> clients;
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", echo.port(), absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
    clients.push_back(std::move(*c));
  }
  const std::string message = Pattern(100 * 1000);
  for (Socket& c : clients) {
    ASSERT_TRUE(c.SendAll(message).ok());
    ASSERT_TRUE(c.Shutdown(SHUT_WR).ok());
    EXPECT_TRUE(ReadAll(c) == message);
  }
  echo.Stop();
  EXPECT_EQ(echo.server_stats().accepted, 8u);
  EXPECT_EQ(echo.server_stats().active, 0u);
  EXPECT_EQ(echo.stats().connections, 8u);
  EXPECT_EQ(echo.stats().bytes, 8u * message.size());
  // Stopped: nothing listens any more.
  absl::StatusOr<Socket> late = CreateConnection("127.0.0.1", echo.port(), absl::Seconds(30));
  EXPECT_FALSE(late.ok());
}

TEST_F(EchoTest, EchoServerOnTheCallingThreadNeedsOneThread) {
  EchoServerOptions options;
  options.on_calling_thread = true;
  options.threads = 2;
  EchoServer echo(options);
  absl::Status s = echo.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("on_calling_thread needs threads == 1, got 2"));
  EXPECT_EQ(echo.port(), 0);
}

TEST_F(EchoTest, EchoServerRejectsAHostName) {
  EchoServerOptions options;
  options.host = "localhost";
  EchoServer echo(options);
  absl::Status s = echo.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a numeric IPv4 or IPv6 address"));
}

// ----- the echo_server binary -----

std::string EchoServerBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "";
  return absl::StrCat(srcdir, "/", workspace, "/socket/echo_server");
}

bool BinaryBuilt() {
  const std::string binary = EchoServerBinary();
  return !binary.empty() && access(binary.c_str(), X_OK) == 0;
}

// Runs the binary with --threads=`threads`, echoes one message, checks how many threads the
// process has (`expect_threads`, or more than one with -1), then SIGTERM and the summary.
void RunBinaryUntilSigterm(int threads, int expect_threads) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  const std::string binary = EchoServerBinary();
  const std::string threads_flag = absl::StrCat("--threads=", threads);
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(binary.c_str(), binary.c_str(), "--port=0", threads_flag.c_str(), nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* lines = fdopen(out[0], "r");
  ASSERT_NE(lines, nullptr);
  char line[512];
  // "echo_server: listening on 127.0.0.1:<port> with N thread(s)"
  ASSERT_NE(fgets(line, sizeof line, lines), nullptr);
  std::string first = line;
  ASSERT_THAT(first, HasSubstr("listening on 127.0.0.1:"));
  const size_t colon = first.rfind(':');
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(first.substr(colon + 1, first.find(' ', colon) - colon - 1), &port))
      << first;
  {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", static_cast<uint16_t>(port),
                                                absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(c->SendAll("hello").ok());
    ASSERT_TRUE(c->Shutdown(SHUT_WR).ok());
    EXPECT_EQ(ReadAll(*c), "hello");
  }
  if (expect_threads > 0) {
    EXPECT_EQ(ThreadCount(pid), expect_threads);
  } else {
    EXPECT_GT(ThreadCount(pid), 1);
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  ASSERT_NE(fgets(line, sizeof line, lines), nullptr);
  EXPECT_THAT(std::string(line),
              HasSubstr("echo_server: SIGTERM: 1 connections, 5 bytes echoed"));
  fclose(lines);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// What a run of the binary that ends by itself gave.
struct BinaryRun {
  int exit_code = -1;  // -1: killed by a signal.
  std::string out;
  std::string err;
};

std::string ReadToEnd(int fd) {
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

// SpawnBinary starts the binary with `args` (with `nofile` > 0, under that soft RLIMIT_NOFILE),
// its stdout and stderr on pipes whose read ends it returns in `out` and `err`; returns the pid,
// or -1 (with a test failure) if the pipes cannot be made.
pid_t SpawnBinary(const std::vector<std::string>& args, rlim_t nofile, int* out, int* err) {
  const std::string binary = EchoServerBinary();
  std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int out_pipe[2];
  int err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) {
    ADD_FAILURE() << "pipe failed";
    return -1;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    if (nofile > 0) {
      struct rlimit limit;
      getrlimit(RLIMIT_NOFILE, &limit);
      limit.rlim_cur = nofile;
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  *out = out_pipe[0];
  *err = err_pipe[0];
  return pid;
}

// Runs the binary with `args` until it exits; with `nofile` > 0, under that soft RLIMIT_NOFILE.
// Both outputs are read to their end (the child writes little: a pipe buffer holds it all).
BinaryRun RunBinaryToExit(const std::vector<std::string>& args, rlim_t nofile = 0) {
  BinaryRun run;
  int out = -1;
  int err = -1;
  const pid_t pid = SpawnBinary(args, nofile, &out, &err);
  if (pid < 0) return run;
  run.out = ReadToEnd(out);
  run.err = ReadToEnd(err);
  close(out);
  close(err);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

// Go's `flag` rule: one line naming the flag, its value and what is allowed; exit code 2; the
// server never starts (nothing on stdout).
TEST_F(EchoTest, BinaryRefusesEachBadFlagWithOneLineAndExitCodeTwo) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  const std::pair<const char*, const char*> cases[] = {
      {"--backlog=-1",
       "echo_server: --backlog=-1: must be between 0 and 65535 (0: net.core.somaxconn)\n"},
      {"--backlog=65536",
       "echo_server: --backlog=65536: must be between 0 and 65535 (0: net.core.somaxconn)\n"},
      {"--idle_timeout=-1s", "echo_server: --idle_timeout=-1s: must be >= 0 (0: never)\n"},
      {"--idle_timeout=abc", "echo_server: --idle_timeout=abc: "},
      {"--port=65536", "echo_server: --port=65536: must be between 0 and 65535\n"},
      {"--port=-1", "echo_server: --port=-1: must be between 0 and 65535\n"},
      {"--port=abc", "echo_server: --port=abc: must be an integer\n"},
      {"--threads=0", "echo_server: --threads=0: must be between 1 and "},
      {"--threads=100000", "echo_server: --threads=100000: must be between 1 and "},
      {"--pool_size=-1", "echo_server: --pool_size=-1: must be between 0 and 2147483647\n"},
      {"--buffer_size=0", "echo_server: --buffer_size=0: must be between 1 and 16777216\n"},
      {"--host=localhost",
       "echo_server: --host=localhost: must be a numeric IPv4 or IPv6 address\n"},
      {"--bogus=1", "echo_server: --bogus=1: unknown flag (see --help)\n"},
      {"--threads", "echo_server: --threads: missing its value\n"},
      {"extra", "echo_server: unexpected argument \"extra\" (echo_server takes flags only)\n"},
  };
  for (const auto& [arg, line] : cases) {
    SCOPED_TRACE(arg);
    const BinaryRun run = RunBinaryToExit({"--port=0", arg});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_TRUE(absl::StartsWith(run.err, line)) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

// --threads=100000 used to start thousands of threads and abort in libev: the bound is 4 per
// core, and said.
TEST_F(EchoTest, BinaryBoundsThreadsByTheCores) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  const BinaryRun run = RunBinaryToExit({"--port=0", "--threads=100000"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err, absl::StrCat("echo_server: --threads=100000: must be between 1 and ",
                                  4 * cores, " (4 per core, ", cores, " cores)\n"));
}

// ... and by the descriptors: each thread holds a few whatever its load.
TEST_F(EchoTest, BinaryBoundsThreadsByRlimitNofile) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  const BinaryRun run = RunBinaryToExit({"--port=0", "--threads=2"}, /*nofile=*/70);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err,
            "echo_server: --threads=2: must be between 1 and 1 (RLIMIT_NOFILE is 70, 4 "
            "descriptors per thread + 64)\n");
}

TEST_F(EchoTest, BinaryHelpExitsZeroAndListsItsFlags) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  for (const char* help : {"--help", "-help", "--helpshort"}) {
    SCOPED_TRACE(help);
    const BinaryRun run = RunBinaryToExit({help});
    EXPECT_EQ(run.exit_code, 0);
    EXPECT_EQ(run.err, "");
    for (const char* part : {"--backlog (default: 0)", "listen backlog, 1..65535",
                             "0: net.core.somaxconn", "--idle_timeout (default: 1m)",
                             "--threads (default: 1)", "--port (default: 9000)",
                             "--host (default: \"127.0.0.1\")", "--pool_size (default: 0)",
                             "--buffer_size (default: 16384)", "2 usage error"}) {
      EXPECT_THAT(run.out, HasSubstr(part));
    }
  }
}

// With one server thread the process is single-threaded (the main thread's hub serves), so the
// kernel needs no reference on a socket's file per system call.
TEST_F(EchoTest, BinaryWithOneThreadIsASingleThreadedProcessAndExitsCleanlyOnSigterm) {
  RunBinaryUntilSigterm(1, 1);
}

TEST_F(EchoTest, BinaryWithTwoThreadsPrintsASummaryAndExitsCleanlyOnSigterm) {
  RunBinaryUntilSigterm(2, -1);
}

// A running echo_server with its stdout and stderr on pipes.
struct RunningBinary {
  pid_t pid = -1;
  FILE* out = nullptr;
  int err = -1;
  uint16_t port = 0;
};

// Starts the binary with `args` (under a soft RLIMIT_NOFILE of `nofile` if > 0) and reads its
// "listening on" line.
void StartBinary(const std::vector<std::string>& args, rlim_t nofile, RunningBinary* run) {
  int out = -1;
  run->pid = SpawnBinary(args, nofile, &out, &run->err);
  ASSERT_GE(run->pid, 0);
  run->out = fdopen(out, "r");
  ASSERT_NE(run->out, nullptr);
  char line[512];
  ASSERT_NE(fgets(line, sizeof line, run->out), nullptr);
  const std::string first = line;
  ASSERT_THAT(first, HasSubstr("listening on 127.0.0.1:"));
  const size_t colon = first.rfind(':');
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(first.substr(colon + 1, first.find(' ', colon) - colon - 1), &port))
      << first;
  run->port = static_cast<uint16_t>(port);
}

// SIGTERM, then the summary line, the whole of stderr and a clean exit.
void StopBinary(RunningBinary* run, std::string* summary, std::string* err) {
  ASSERT_EQ(kill(run->pid, SIGTERM), 0);
  char line[512];
  ASSERT_NE(fgets(line, sizeof line, run->out), nullptr);
  *summary = line;
  fclose(run->out);
  *err = ReadToEnd(run->err);
  close(run->err);
  int status = 0;
  ASSERT_EQ(waitpid(run->pid, &status, 0), run->pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The number before `what` in the summary line ("..., 12 refused for lack of fds, ...").
uint64_t SummaryCount(const std::string& summary, absl::string_view what) {
  const size_t at = summary.find(std::string(what));
  if (at == std::string::npos || at < 2) return 0;
  size_t begin = summary.rfind(' ', at - 2);
  begin = begin == std::string::npos ? 0 : begin + 1;
  uint64_t n = 0;
  (void)absl::SimpleAtoi(summary.substr(begin, at - 1 - begin), &n);
  return n;
}

// How soon a refused client must see its end: a second; under ThreadSanitizer on a loaded 2-vCPU
// machine the server's 10 ms back-off timer was seen firing 0.6-0.9 s late, so 5 s there.
#if defined(__SANITIZE_THREAD__)
constexpr absl::Duration kPrompt = absl::Seconds(5);
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr absl::Duration kPrompt = absl::Seconds(5);
#else
constexpr absl::Duration kPrompt = absl::Seconds(1);
#endif
#else
constexpr absl::Duration kPrompt = absl::Seconds(1);
#endif

// echo_server with its default flags and 128 descriptors, flooded past them: clients arriving
// meanwhile are refused within a second (none hang), a new client is served once the flood
// goes, and the SIGTERM summary and stderr say what happened.
TEST_F(EchoTest, BinaryOutOfDescriptorsRefusesPromptlyServesAfterwardsAndSaysSo) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
#ifdef GEVENT_UBSAN
  // Out of descriptors, UBSan's runtime cannot check a vtable: it probes memory through a pipe,
  // whose pipe2 fails with EMFILE (seen with strace), and then reports the next virtual call as
  // "object has invalid vptr" and aborts (-fno-sanitize-recover ignores suppressions). The
  // in-process flood in server_test still runs under UBSan.
  GTEST_SKIP() << "UBSan's runtime needs descriptors of its own to check virtual calls";
#endif
  RunningBinary run;
  StartBinary({"--port=0"}, /*nofile=*/128, &run);
  if (HasFatalFailure()) return;
  const SocketAddress address = SocketAddress::Loopback(run.port);

  std::vector<Socket> flood;
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<Socket> c = Socket::Create(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(c->Connect(address, absl::Seconds(5)).ok()) << i;
    flood.push_back(std::move(*c));
  }
  // The server works through the queue in order (slowly under a sanitizer): once the last of the
  // flood is refused, it is out of descriptors and refusing.
  {
    char byte;
    absl::StatusOr<size_t> n = flood.back().RecvInto(&byte, 1, absl::Seconds(30));
    ASSERT_TRUE((n.ok() && *n == 0) || absl::IsUnavailable(n.status())) << n.status();
  }
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Socket> probe = Socket::Create(AF_INET, SOCK_STREAM);
    ASSERT_TRUE(probe.ok()) << probe.status();
    ASSERT_TRUE(probe->Connect(address, absl::Seconds(1)).ok()) << i;
    const absl::Time start = absl::Now();
    char byte;
    absl::StatusOr<size_t> n = probe->RecvInto(&byte, 1, kPrompt);
    EXPECT_TRUE((n.ok() && *n == 0) || absl::IsUnavailable(n.status())) << i << ": " << n.status();
    EXPECT_LT(absl::Now() - start, kPrompt) << i;
  }

  // The flood goes; a new client is served within a second or two (the server first sees the
  // flood's closes: until then a client may still be refused, and tries again).
  flood.clear();
  bool served = false;
  const absl::Time deadline = absl::Now() + 2 * kPrompt;
  while (!served && absl::Now() < deadline) {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", run.port, absl::Seconds(1));
    if (!c.ok()) continue;
    if (!c->SendAll("again", absl::Seconds(1)).ok()) continue;
    char back[5];
    served = c->RecvExactly(absl::MakeSpan(back), absl::Seconds(1)).ok() &&
             std::string(back, 5) == "again";
  }
  EXPECT_TRUE(served) << "no client served within 2 s of the flood's end";

  std::string summary;
  std::string err;
  StopBinary(&run, &summary, &err);
  EXPECT_THAT(summary, HasSubstr("echo_server: SIGTERM: "));
  EXPECT_GT(SummaryCount(summary, "refused for lack of fds"), 0u) << summary;
  EXPECT_GT(SummaryCount(summary, "fd back-offs"), 0u) << summary;
  EXPECT_THAT(summary, HasSubstr(" idle closes\n"));
  EXPECT_THAT(err, HasSubstr("gevent::StreamServer 127.0.0.1:"));
  EXPECT_THAT(err, ::testing::Not(HasSubstr("cannot reopen the spare"))) << err;
  EXPECT_THAT(err, HasSubstr(": out of file descriptors (EMFILE): refused "));
  // Rate-limited: one line per second at most (the test takes a few), plus the one at Stop.
  EXPECT_LE(std::count(err.begin(), err.end(), '\n'), 10) << err;
}

// --idle_timeout: a silent client is closed after about the timeout, and counted.
TEST_F(EchoTest, BinaryIdleTimeoutClosesASilentClientAndCountsIt) {
  if (!BinaryBuilt()) GTEST_SKIP() << "not run by Bazel";
  RunningBinary run;
  StartBinary({"--port=0", "--idle_timeout=200ms"}, 0, &run);
  if (HasFatalFailure()) return;
  {
    absl::StatusOr<Socket> c = CreateConnection("127.0.0.1", run.port, absl::Seconds(5));
    ASSERT_TRUE(c.ok()) << c.status();
    const absl::Time start = absl::Now();
    char byte;
    absl::StatusOr<size_t> n = c->RecvInto(&byte, 1, absl::Seconds(5));
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  }
  std::string summary;
  std::string err;
  StopBinary(&run, &summary, &err);
  EXPECT_THAT(summary, HasSubstr("0 connection errors"));
  EXPECT_THAT(summary, HasSubstr("1 idle closes"));
  EXPECT_EQ(err, "");
}

// EchoConnection: a receive timeout is an idle client, closed and counted, not an error.
TEST_F(EchoTest, IdleTimeoutClosesASilentConnectionAsIdleNotAsAnError) {
  stats_ = std::make_shared<EchoStats>();
  StreamServerOptions options;
  options.idle_timeout = absl::Milliseconds(200);
  server_ = std::make_unique<StreamServer>(SocketAddress::Loopback(0), MakeEchoHandler(stats_),
                                           options);
  ASSERT_TRUE(server_->Start().ok());
  Socket silent = Connect();
  Socket active = Connect();
  const absl::Time start = absl::Now();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(active.SendAll("x").ok());
    char back;
    ASSERT_TRUE(active.RecvExactly(absl::MakeSpan(&back, 1), absl::Seconds(5)).ok()) << i;
    Sleep(absl::Milliseconds(50));
  }
  char byte;
  absl::StatusOr<size_t> n = silent.RecvInto(&byte, 1, absl::Seconds(5));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  const EchoStatsSnapshot s = stats_->Snapshot();
  EXPECT_EQ(s.idle_closed, 1u);
  EXPECT_EQ(s.errors, 0u);
}

}  // namespace
}  // namespace gevent
