// The loadgen binary as a subprocess: signals mid-run, a dead or unresolvable target, an
// unwritable --json. Every wait is on the child's pipes or its exit, never a sleep; each case
// asserts the process ends within a bound well below the --duration it was given.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "socket/address.h"
#include "socket/socket.h"
#include "socket/testing.h"

namespace {

// The binary, from the test's runfiles (data dependency in BUILD).
std::string BinaryPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return absl::StrCat(srcdir, "/", workspace, "/loadgen/loadgen");
  }
  return "loadgen/loadgen";
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// Child: a running loadgen with its stdout and stderr on pipes.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int out[2];
    int err[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    const std::string binary = BinaryPath();
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_ = fdopen(out[0], "r");
    err_fd_ = err[0];
  }
  ~Child() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) std::fclose(out_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // ReadLineStartingWith reads stdout up to a line that starts with `prefix` (false at EOF).
  bool ReadLineStartingWith(const std::string& prefix) {
    char line[4096];
    while (std::fgets(line, sizeof line, out_) != nullptr) {
      stdout_ += line;
      if (absl::StartsWith(line, prefix)) return true;
    }
    return false;
  }

  void Signal(int signal) { kill(pid_, signal); }

  // Wait reads both pipes to EOF and returns the exit code (128 + n for a death by signal n).
  int Wait() {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, out_)) > 0) stdout_.append(buf, n);
    ssize_t m;
    while ((m = read(err_fd_, buf, sizeof buf)) > 0) stderr_.append(buf, static_cast<std::size_t>(m));
    int status = 0;
    EXPECT_EQ(waitpid(pid_, &status, 0), pid_);
    waited_ = true;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status) + 1000;  // Killed: never a clean code.
    return -1;
  }

  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

 private:
  pid_t pid_ = -1;
  bool waited_ = false;
  std::FILE* out_ = nullptr;
  int err_fd_ = -1;
  std::string stdout_;
  std::string stderr_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A signal mid-run: the report of what ran, marked interrupted, the JSON with "interrupted":
// true, exit 128 + signal (it used to exit at once with no report).
void ExpectInterruptedRun(int signal, const char* name, int code) {
  const std::string json = TempPath(absl::StrCat("interrupted_", name, ".json"));
  std::remove(json.c_str());
  const absl::Time start = absl::Now();
  Child child({"--clients=10", "--warmup=100ms", "--duration=60s", "--json=" + json});
  // The first measured progress line (warm-up lines say "warmup").
  ASSERT_TRUE(child.ReadLineStartingWith("[   1.")) << child.out();
  child.Signal(signal);
  EXPECT_EQ(child.Wait(), code) << child.out() << child.err();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(child.out(), absl::StrCat("\ninterrupted by ", name, " after ")))
      << child.out();
  EXPECT_TRUE(absl::StrContains(child.out(), "of 60.00 s measured\n")) << child.out();
  EXPECT_TRUE(absl::StrContains(child.out(), "throughput")) << child.out();
  const std::string text = ReadAll(json);
  EXPECT_TRUE(absl::StrContains(text, "\"interrupted\": true,")) << text;
  EXPECT_TRUE(absl::StrContains(text, absl::StrCat("\"signal\": \"", name, "\","))) << text;
  EXPECT_TRUE(absl::EndsWith(text, "}\n")) << text;
  EXPECT_FALSE(absl::StrContains(text, "\"seconds\": 60")) << text;
}

TEST(MainTest, SigintMidRunReportsWhatRanAndExits130) {
  ExpectInterruptedRun(SIGINT, "SIGINT", 130);
}

TEST(MainTest, SigtermMidRunReportsWhatRanAndExits143) {
  ExpectInterruptedRun(SIGTERM, "SIGTERM", 143);
}

// A signal during the warm-up: an empty measured window, still a report and exit 130.
TEST(MainTest, SigintDuringWarmupReportsAnEmptyWindow) {
  Child child({"--clients=10", "--warmup=60s", "--duration=60s"});
  ASSERT_TRUE(child.ReadLineStartingWith("[   1.")) << child.out();
  child.Signal(SIGINT);
  EXPECT_EQ(child.Wait(), 130) << child.out() << child.err();
  EXPECT_TRUE(absl::StrContains(child.out(), "interrupted by SIGINT after 0.00 s of 60.00 s"))
      << child.out();
  EXPECT_TRUE(absl::StrContains(child.out(), "messages              0 in 0.00 s")) << child.out();
}

// Ignored SIGINT inherited from the parent (as from a script's background job) is overridden.
TEST(MainTest, InheritedIgnoredSigintStillStopsTheRun) {
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGINT, &ignore, &old);
  Child child({"--clients=5", "--warmup=0s", "--duration=60s"});
  sigaction(SIGINT, &old, nullptr);
  ASSERT_TRUE(child.ReadLineStartingWith("[   1.")) << child.out();
  child.Signal(SIGINT);
  EXPECT_EQ(child.Wait(), 130) << child.out() << child.err();
  EXPECT_TRUE(absl::StrContains(child.out(), "interrupted by SIGINT")) << child.out();
}

// A second signal ends the process at once, still with the signal's exit code.
TEST(MainTest, SecondSignalExitsPromptly) {
  const absl::Time start = absl::Now();
  Child child({"--clients=10", "--warmup=0s", "--duration=60s"});
  ASSERT_TRUE(child.ReadLineStartingWith("[   1.")) << child.out();
  child.Signal(SIGINT);
  child.Signal(SIGINT);
  EXPECT_EQ(child.Wait(), 130) << child.out() << child.err();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

// A refused target: exit 3 after --connect_timeout with the reason (it used to retry for the
// whole run).
TEST(MainTest, DeadTargetExits3AfterTheConnectTimeout) {
  const int port = gevent::testing::RefusedPort();
  const absl::Time start = absl::Now();
  Child child({absl::StrCat("--target=127.0.0.1:", port), "--clients=5", "--connect_timeout=1s",
               "--duration=60s"});
  EXPECT_EQ(child.Wait(), 3) << child.out() << child.err();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(
      child.err(), absl::StrCat("loadgen: no connection to 127.0.0.1:", port, " within 1s: ")))
      << child.err();
  EXPECT_TRUE(absl::StrContains(child.err(), "Connection refused")) << child.err();
}

// A name that does not resolve: exit 3 at once with the resolver's text.
TEST(MainTest, UnresolvableTargetExits3WithTheResolversText) {
  const absl::Time start = absl::Now();
  Child child({"--target=nohost.invalid:1", "--duration=60s"});
  EXPECT_EQ(child.Wait(), 3) << child.out() << child.err();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(absl::StartsWith(child.err(), "loadgen: --target=nohost.invalid:1: ")) << child.err();
  EXPECT_GT(child.err().size(), std::string("loadgen: --target=nohost.invalid:1: \n").size());
  EXPECT_EQ(child.out(), "");  // Nothing ran.
}

// An unwritable --json is found before the run (it used to be found after it, results lost).
TEST(MainTest, UnwritableJsonPathExits3BeforeTheRun) {
  const absl::Time start = absl::Now();
  Child child({"--json=/nonexistent/x.json", "--duration=60s"});
  EXPECT_EQ(child.Wait(), 3) << child.out() << child.err();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(child.err(), "loadgen: --json=/nonexistent/x.json: No such file or directory\n");
  EXPECT_EQ(child.out(), "");
}

// A bad --warmup is a usage error naming the flag.
TEST(MainTest, NegativeWarmupIsAUsageError) {
  Child child({"--warmup=-1s"});
  EXPECT_EQ(child.Wait(), 2);
  EXPECT_EQ(child.err(), "loadgen: --warmup=-1s: must be zero or positive and finite\n");
}

// The number after `"key": ` in a loadgen JSON document (the first occurrence; -1 if none).
long long JsonInteger(const std::string& text, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  const std::size_t at = text.find(needle);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + needle.size());
}

// Two real runs against the embedded echo server, merged: the merged histogram counts every
// sample of both, the merged messages are the sum, and the merged JSON merges again.
TEST(MainTest, MergeOfTwoRealRunsCountsEverySample) {
  const std::string a = TempPath("merge_a.json");
  const std::string b = TempPath("merge_b.json");
  const std::string m = TempPath("merge_m.json");
  for (const std::string& path : {a, b}) {
    Child run({"--clients=4", "--warmup=0s", "--duration=300ms", "--progress=false",
               "--json=" + path});
    ASSERT_EQ(run.Wait(), 0) << run.out() << run.err();
  }
  const std::string ja = ReadAll(a);
  const std::string jb = ReadAll(b);
  const long long messages_a = JsonInteger(ja, "messages");
  const long long messages_b = JsonInteger(jb, "messages");
  ASSERT_GT(messages_a, 0) << ja;
  ASSERT_GT(messages_b, 0) << jb;
  const std::size_t histogram_a = ja.find("\"latency_histogram\": {\"version\": 1, ");
  const std::size_t histogram_b = jb.find("\"latency_histogram\": {\"version\": 1, ");
  ASSERT_NE(histogram_a, std::string::npos) << ja;
  ASSERT_NE(histogram_b, std::string::npos) << jb;
  const long long samples_a = JsonInteger(ja.substr(histogram_a), "count");
  const long long samples_b = JsonInteger(jb.substr(histogram_b), "count");
  ASSERT_GT(samples_a, 0) << ja;
  ASSERT_GT(samples_b, 0) << jb;

  Child merge({"merge", a, b, "--json=" + m});
  ASSERT_EQ(merge.Wait(), 0) << merge.out() << merge.err();
  EXPECT_EQ(merge.err(), "");
  EXPECT_TRUE(absl::StartsWith(merge.out(), absl::StrCat("merged 2 runs: ", a, ", ", b, "\n")))
      << merge.out();
  EXPECT_TRUE(absl::StrContains(merge.out(), "loadgen: 8 clients (2 client threads)"))
      << merge.out();
  EXPECT_TRUE(absl::StrContains(merge.out(),
                                absl::StrCat("messages              ", messages_a + messages_b,
                                             " in ")))
      << merge.out();
  const std::string jm = ReadAll(m);
  EXPECT_EQ(JsonInteger(jm, "messages"), messages_a + messages_b) << jm;
  const std::size_t histogram = jm.find("\"latency_histogram\": ");
  ASSERT_NE(histogram, std::string::npos) << jm;
  EXPECT_EQ(JsonInteger(jm.substr(histogram), "count"), samples_a + samples_b) << jm;

  // The merged file merges again: with A once more, three runs' samples.
  Child again({"merge", m, a});
  ASSERT_EQ(again.Wait(), 0) << again.out() << again.err();
  EXPECT_TRUE(absl::StrContains(again.out(),
                                absl::StrCat("messages              ",
                                             2 * messages_a + messages_b, " in ")))
      << again.out();
}

// Bad input through the binary: no file is a usage error (2); a missing or non-JSON file is an
// input error (3) naming the file.
TEST(MainTest, MergeBadInputExitCodes) {
  {
    Child merge({"merge"});
    EXPECT_EQ(merge.Wait(), 2);
    EXPECT_EQ(merge.err(),
              "loadgen merge: no input file (usage: loadgen merge [--json=OUT] FILE.json...)\n");
  }
  const std::string missing = TempPath("merge_missing.json");
  std::remove(missing.c_str());
  {
    Child merge({"merge", missing});
    EXPECT_EQ(merge.Wait(), 3);
    EXPECT_EQ(merge.err(), absl::StrCat("loadgen merge: ", missing,
                                        ": cannot open: No such file or directory\n"));
    EXPECT_EQ(merge.out(), "");
  }
  const std::string text = TempPath("merge_text.json");
  {
    std::ofstream out(text);
    out << "{\"format_version\": 1,";
  }
  {
    Child merge({"merge", text});
    EXPECT_EQ(merge.Wait(), 3);
    EXPECT_TRUE(absl::StartsWith(merge.err(), absl::StrCat("loadgen merge: ", text, ": not JSON: ")))
        << merge.err();
  }
}

// Bad protocol options are usage errors naming the flag; nothing runs.
TEST(MainTest, BadProtocolOptionsAreUsageErrors) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--protocol=ftp"}, "loadgen: --protocol=ftp: must be echo, redis or http\n"},
      {{"--protocol=redis", "--target=127.0.0.1:1", "--ratio=abc"},
       "loadgen: --ratio=abc: must be SET:GET, two non-negative integers (e.g. 1:10)\n"},
      {{"--protocol=http", "--target=127.0.0.1:1", "--path=nope"},
       "loadgen: --path=nope: must start with '/'\n"},
      {{"--protocol=http", "--target=127.0.0.1:1", "--header=NoColon"},
       "loadgen: --header=NoColon: must be NAME:VALUE (no colon)\n"},
      {{"--protocol=redis"},
       "loadgen: --protocol=redis: needs --target=HOST:PORT (the embedded server speaks echo "
       "only)\n"},
  };
  for (const auto& [args, message] : cases) {
    Child child(args);
    EXPECT_EQ(child.Wait(), 2) << message;
    EXPECT_EQ(child.err(), message);
    EXPECT_EQ(child.out(), "");
  }
}

}  // namespace
