#include "monkey/testing/servers.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace gevent {
namespace testing {
namespace {

constexpr size_t kMaxSocketDir = 80;  // sun_path is 108 bytes; leave room for the file name.
constexpr absl::Duration kRetryEvery = absl::Milliseconds(5);
constexpr absl::Duration kStopDeadline = absl::Seconds(10);

// PauseBriefly: the retry interval of the bounded readiness polls.
void PauseBriefly() { poll(nullptr, 0, static_cast<int>(absl::ToInt64Milliseconds(kRetryEvery))); }

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// Credentials a child runs with (none: the caller's).
struct RunAs {
  uid_t uid;
  gid_t gid;
};

// Launch forks and execs argv[0] with stdout and stderr appended to `log`; returns the pid.
absl::StatusOr<pid_t> Launch(const std::vector<std::string>& args, const std::string& log,
                             std::optional<RunAs> run_as) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) dup2(null, STDIN_FILENO);
    if (run_as.has_value() &&
        (setgroups(0, nullptr) != 0 || setgid(run_as->gid) != 0 || setuid(run_as->uid) != 0)) {
      _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// WaitExit reaps `pid` within `deadline`; its wait status, or nullopt if it still runs.
std::optional<int> WaitExit(pid_t pid, absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;  // Not our child any more: nothing to wait for.
    if (absl::Now() >= end) return std::nullopt;
    PauseBriefly();
  }
}

// Reap: WaitExit, then SIGKILL and a last wait if it did not go.
void Reap(pid_t pid) {
  if (!WaitExit(pid, kStopDeadline).has_value()) {
    kill(pid, SIGKILL);
    WaitExit(pid, kStopDeadline);
  }
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return "stopped";
}

// RedisAnswersPing: one bounded PING over the Unix socket (plain blocking POSIX calls).
bool RedisAnswersPing(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
    pollfd p{fd, POLLIN, 0};
    char buf[16] = {};
    ok = poll(&p, 1, 1000) == 1 && recv(fd, buf, sizeof buf - 1, 0) > 0 &&
         std::strncmp(buf, "+PONG", 5) == 0;
  }
  close(fd);
  return ok;
}

// SearchableByOthers: every folder from `path` up to / has the others' x bit.
bool SearchableByOthers(std::filesystem::path path) {
  for (; !path.empty(); path = path.parent_path()) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    if (path == path.root_path()) break;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> MakeTempDir(const std::string& prefix, bool world_traversable) {
  std::string base = "/tmp";
  if (const char* t = std::getenv("TEST_TMPDIR"); t != nullptr && *t != '\0') {
    const std::string candidate = t;
    if (candidate.size() + prefix.size() + 8 <= kMaxSocketDir &&
        (!world_traversable || SearchableByOthers(candidate))) {
      base = candidate;
    }
  }
  std::string templ = absl::StrCat(base, "/", prefix, "XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", templ, ": ", std::strerror(errno)));
  }
  return templ;
}

void RemoveTree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

// ----- RedisServer -----

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(absl::Duration deadline,
                                                                 int tcp_port) {
  const std::string binary = "/usr/bin/redis-server";
  if (!IsExecutable(binary)) {
    return absl::FailedPreconditionError(
        absl::StrCat(binary, " not found: install Debian's redis-server package "
                             "(apt-get install redis-server, or tools/setup.sh)"));
  }
  absl::StatusOr<std::string> dir = MakeTempDir("redis", /*world_traversable=*/false);
  if (!dir.ok()) return dir.status();
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->dir_ = *dir;
  server->socket_path_ = *dir + "/redis.sock";
  const std::string log = *dir + "/redis.log";
  server->tcp_port_ = tcp_port > 0 ? tcp_port : 0;
  std::vector<std::string> args = {binary, "--port", absl::StrCat(server->tcp_port_),
                                   "--unixsocket", server->socket_path_, "--save", "",
                                   "--appendonly", "no", "--daemonize", "no", "--dir", *dir,
                                   "--maxclients", "4000"};
  if (tcp_port > 0) {
    args.insert(args.end(), {"--bind", "127.0.0.1", "--protected-mode", "no"});
  }
  absl::StatusOr<pid_t> pid = Launch(args, log, std::nullopt);
  if (!pid.ok()) return pid.status();
  server->pid_ = *pid;
  const absl::Time end = absl::Now() + deadline;
  while (!RedisAnswersPing(server->socket_path_)) {
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      return absl::UnavailableError(absl::StrCat("redis-server ", DescribeExit(status),
                                                 " before answering; its log:\n", Tail(log)));
    }
    if (absl::Now() >= end) {
      return absl::DeadlineExceededError(
          absl::StrCat("redis-server did not answer PING on ", server->socket_path_, " within ",
                       absl::FormatDuration(deadline), "; its log:\n", Tail(log)));
    }
    PauseBriefly();
  }
  return server;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  Reap(pid_);
  pid_ = -1;
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Reap(pid_);
  pid_ = -1;
}

RedisServer::~RedisServer() {
  Stop();
  if (!dir_.empty()) RemoveTree(dir_);
}

// ----- NginxServer -----

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

namespace {

bool TcpConnects(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NginxServer>> NginxServer::Start(absl::Duration deadline) {
  const std::string binary = "/usr/sbin/nginx";
  if (!IsExecutable(binary)) {
    return absl::FailedPreconditionError(
        absl::StrCat(binary, " not found: install Debian's nginx-light package "
                             "(apt-get install nginx-light, or tools/setup.sh)"));
  }
  absl::StatusOr<std::string> dir = MakeTempDir("nginx", /*world_traversable=*/false);
  if (!dir.ok()) return dir.status();
  std::unique_ptr<NginxServer> server(new NginxServer());
  server->dir_ = *dir;
  server->port_ = FreeLoopbackPort();
  if (server->port_ <= 0) return absl::InternalError("no free loopback port for nginx");
  std::filesystem::create_directories(*dir + "/www");
  std::filesystem::create_directories(*dir + "/tmp");
  // 64 bytes: 63 characters and a newline.
  if (!WriteText(*dir + "/www/index.html", std::string(63, 'n') + "\n")) {
    return absl::InternalError(absl::StrCat("cannot write ", *dir, "/www/index.html"));
  }
  const std::string& d = *dir;
  const std::string conf = absl::StrCat(
      "daemon off;\nmaster_process off;\nworker_processes 1;\npid ", d, "/nginx.pid;\n",
      "error_log ", d, "/error.log warn;\n",
      "events { worker_connections 8192; }\n",
      "http {\n  access_log ", d, "/access.log;\n",
      "  client_body_temp_path ", d, "/tmp/body;\n  proxy_temp_path ", d, "/tmp/proxy;\n",
      "  fastcgi_temp_path ", d, "/tmp/fastcgi;\n  uwsgi_temp_path ", d, "/tmp/uwsgi;\n",
      "  scgi_temp_path ", d, "/tmp/scgi;\n",
      "  keepalive_requests 100000000;\n  keepalive_timeout 60s;\n",
      "  server {\n    listen 127.0.0.1:", server->port_, " backlog=4096;\n    root ", d,
      "/www;\n  }\n}\n");
  if (!WriteText(d + "/nginx.conf", conf)) {
    return absl::InternalError(absl::StrCat("cannot write ", d, "/nginx.conf"));
  }
  const std::string log = d + "/stderr.log";
  absl::StatusOr<pid_t> pid =
      Launch({binary, "-p", d, "-c", d + "/nginx.conf", "-e", d + "/error.log"}, log, std::nullopt);
  if (!pid.ok()) return pid.status();
  server->pid_ = *pid;
  const absl::Time end = absl::Now() + deadline;
  while (!TcpConnects(server->port_)) {
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      return absl::UnavailableError(absl::StrCat("nginx ", DescribeExit(status),
                                                 " before accepting; its logs:\n", Tail(log),
                                                 Tail(d + "/error.log")));
    }
    if (absl::Now() >= end) {
      return absl::DeadlineExceededError(absl::StrCat(
          "nginx did not accept on 127.0.0.1:", server->port_, " within ",
          absl::FormatDuration(deadline), "; its log:\n", Tail(d + "/error.log")));
    }
    PauseBriefly();
  }
  return server;
}

std::uint64_t NginxServer::AccessLogLines() const {
  std::ifstream in(dir_ + "/access.log");
  std::uint64_t lines = 0;
  std::string line;
  while (std::getline(in, line)) ++lines;
  return lines;
}

void NginxServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  Reap(pid_);
  pid_ = -1;
}

void NginxServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Reap(pid_);
  pid_ = -1;
}

NginxServer::~NginxServer() {
  Stop();
  if (!dir_.empty()) RemoveTree(dir_);
}

// ----- PostgresServer -----

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(absl::Duration deadline) {
  std::string bin;
  for (const char* version : {"15", "16", "14", "17", "13"}) {
    const std::string candidate = absl::StrCat("/usr/lib/postgresql/", version, "/bin");
    if (IsExecutable(candidate + "/initdb") && IsExecutable(candidate + "/postgres")) {
      bin = candidate;
      break;
    }
  }
  if (bin.empty()) {
    return absl::FailedPreconditionError(
        "/usr/lib/postgresql/15/bin/initdb and postgres not found: install Debian's postgresql "
        "package (apt-get install postgresql, or tools/setup.sh)");
  }
  std::optional<RunAs> run_as;
  if (geteuid() == 0) {
    const passwd* user = getpwnam("postgres");
    if (user == nullptr) user = getpwnam("nobody");
    if (user == nullptr) {
      return absl::FailedPreconditionError(
          "running as root and neither a 'postgres' nor a 'nobody' user exists for the server "
          "(Debian's postgresql package creates 'postgres')");
    }
    run_as = RunAs{user->pw_uid, user->pw_gid};
  }
  absl::StatusOr<std::string> dir = MakeTempDir("pg", /*world_traversable=*/run_as.has_value());
  if (!dir.ok()) return dir.status();
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->dir_ = *dir;
  server->socket_dir_ = *dir;
  server->conninfo_ =
      absl::StrCat("host=", *dir, " port=5432 dbname=postgres user=postgres connect_timeout=10");
  if (run_as.has_value() && chown(dir->c_str(), run_as->uid, run_as->gid) != 0) {
    return absl::InternalError(absl::StrCat("chown ", *dir, ": ", std::strerror(errno)));
  }
  const std::string data = *dir + "/data";
  const std::string log = *dir + "/postgres.log";
  absl::StatusOr<pid_t> initdb =
      Launch({bin + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync",
              "--locale=C", "-E", "UTF8"},
             log, run_as);
  if (!initdb.ok()) return initdb.status();
  const std::optional<int> init_status = WaitExit(*initdb, absl::Seconds(60));
  if (!init_status.has_value()) {
    kill(*initdb, SIGKILL);
    WaitExit(*initdb, kStopDeadline);
    return absl::DeadlineExceededError(absl::StrCat("initdb took over 60 s; log:\n", Tail(log)));
  }
  if (!WIFEXITED(*init_status) || WEXITSTATUS(*init_status) != 0) {
    return absl::InternalError(
        absl::StrCat("initdb ", DescribeExit(*init_status), "; log:\n", Tail(log)));
  }
  absl::StatusOr<pid_t> pid =
      Launch({bin + "/postgres", "-D", data, "-k", *dir, "-c", "listen_addresses=", "-c",
              "port=5432", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
              "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=16MB"},
             log, run_as);
  if (!pid.ok()) return pid.status();
  server->pid_ = *pid;
  const absl::Time end = absl::Now() + deadline;
  while (PQping(server->conninfo_.c_str()) != PQPING_OK) {
    int status = 0;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      return absl::UnavailableError(absl::StrCat("postgres ", DescribeExit(status),
                                                 " before accepting connections; log:\n",
                                                 Tail(log)));
    }
    if (absl::Now() >= end) {
      return absl::DeadlineExceededError(
          absl::StrCat("postgres did not accept connections on ", *dir, " within ",
                       absl::FormatDuration(deadline), "; log:\n", Tail(log)));
    }
    PauseBriefly();
  }
  return server;
}

void PostgresServer::Signal(int signal) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  Reap(pid_);
  pid_ = -1;
}

void PostgresServer::Stop() { Signal(SIGINT); }
void PostgresServer::StopImmediately() { Signal(SIGQUIT); }

PostgresServer::~PostgresServer() {
  Stop();
  if (!dir_.empty()) RemoveTree(dir_);
}

}  // namespace testing
}  // namespace gevent
