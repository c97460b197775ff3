// Real servers for monkey's integration tests, the examples' test and the benchmarks: a
// redis-server (Debian's redis-server) and a throwaway PostgreSQL cluster (Debian's postgresql),
// each started by the caller in a fresh temporary folder, reached over a Unix socket there, and
// stopped (and the folder removed) when the object goes.
//
//   absl::StatusOr<std::unique_ptr<gevent::testing::RedisServer>> redis =
//       gevent::testing::RedisServer::Start();
//   ASSERT_TRUE(redis.ok()) << redis.status();      // names the Debian package when missing
//   redisConnectUnix((*redis)->socket_path().c_str());
//
//   auto pg = gevent::testing::PostgresServer::Start();
//   PQconnectdb((*pg)->conninfo().c_str());          // "host=<socket dir> dbname=postgres ..."
//
// Readiness is polled (connect every few ms, PQping for PostgreSQL) up to a bounded deadline
// (10 s by default; initdb gets 60 s); a server that exits or never answers gives an error with
// its log. Nothing here sleeps to synchronise.
//
// Folders: under $TEST_TMPDIR when the path is short enough for a Unix socket (108 bytes) and,
// for PostgreSQL started as root, reachable by the unprivileged user the server runs as; under
// /tmp otherwise. As root, PostgreSQL runs as the `postgres` user the Debian package creates
// (`nobody` if there is none): initdb and postgres refuse to run as root.
//
// Start them before any thread exists (they fork). Not thread-safe.
#ifndef GEVENT_MONKEY_TESTING_SERVERS_H_
#define GEVENT_MONKEY_TESTING_SERVERS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gevent {
namespace testing {

// TempDir makes a fresh folder (see the file comment); `world_traversable` also requires that
// every parent of it can be searched by other users (for a server that drops root).
absl::StatusOr<std::string> MakeTempDir(const std::string& prefix, bool world_traversable);
// RemoveTree removes a folder and everything in it (best effort).
void RemoveTree(const std::string& path);

class RedisServer {
 public:
  // Start runs `redis-server --port 0 --unixsocket <dir>/redis.sock --save "" --appendonly no`
  // and returns once it answers PING on the socket. FailedPrecondition naming the Debian package
  // when /usr/bin/redis-server is missing.
  // `tcp_port` > 0 also listens on 127.0.0.1:tcp_port (FreeLoopbackPort() picks one), for
  // clients that speak TCP (the load generator).
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      absl::Duration deadline = absl::Seconds(10), int tcp_port = 0);
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // ~RedisServer: Stop, then the folder is removed.
  ~RedisServer();

  const std::string& socket_path() const { return socket_path_; }
  int tcp_port() const { return tcp_port_; }  // 0: no TCP listener.
  pid_t pid() const { return pid_; }
  // Stop: SIGTERM, reaped within 10 s (SIGKILL after that). Idempotent.
  void Stop();
  // Kill: SIGKILL, reaped (a server that dies mid-run). Idempotent.
  void Kill();

 private:
  RedisServer() = default;
  std::string dir_;
  std::string socket_path_;
  int tcp_port_ = 0;
  pid_t pid_ = -1;
};

// FreeLoopbackPort: a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// closed), or -1.
int FreeLoopbackPort();

// NginxServer: Debian's nginx in the foreground as the caller's child (daemon off, master_process
// off), with a config written into a fresh temporary folder: its own pid file, error and access
// logs and temp folders there, `keepalive_requests` unbounded, serving files from <dir>/www on
// 127.0.0.1:<free port>. <dir>/www/index.html is a 64-byte file; more may be written with
// WriteFile. Start returns once a TCP connect succeeds. FailedPrecondition naming the Debian
// package (nginx-light) when /usr/sbin/nginx is missing.
class NginxServer {
 public:
  static absl::StatusOr<std::unique_ptr<NginxServer>> Start(
      absl::Duration deadline = absl::Seconds(10));
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;
  // ~NginxServer: Stop, then the folder is removed.
  ~NginxServer();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  // AccessLogLines: requests nginx has logged so far (one line each; the log is unbuffered).
  std::uint64_t AccessLogLines() const;
  // Stop: SIGTERM (fast shutdown), reaped within 10 s (SIGKILL after that). Idempotent.
  void Stop();
  // Kill: SIGKILL, reaped. Idempotent.
  void Kill();

 private:
  NginxServer() = default;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

class PostgresServer {
 public:
  // Start runs initdb (trust authentication, no fsync) and postgres on a Unix socket in a fresh
  // folder (no TCP listener), and returns once PQping says it accepts connections.
  // FailedPrecondition naming Debian's postgresql when initdb/postgres are missing.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(
      absl::Duration deadline = absl::Seconds(10));
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  // ~PostgresServer: Stop, then the folder is removed.
  ~PostgresServer();

  // conninfo: "host=<socket dir> port=5432 dbname=postgres user=postgres".
  const std::string& conninfo() const { return conninfo_; }
  const std::string& socket_dir() const { return socket_dir_; }
  pid_t pid() const { return pid_; }
  // Stop: a fast shutdown (SIGINT), reaped within 10 s (SIGKILL after that). Idempotent.
  void Stop();
  // StopImmediately: an immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends):
  // the postmaster kills every backend at once, mid-query. Reaped within 10 s. Idempotent.
  void StopImmediately();

 private:
  PostgresServer() = default;
  void Signal(int signal);
  std::string dir_;
  std::string socket_dir_;
  std::string conninfo_;
  pid_t pid_ = -1;
};

}  // namespace testing
}  // namespace gevent

#endif  // GEVENT_MONKEY_TESTING_SERVERS_H_
