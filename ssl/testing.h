// Test helpers for //ssl: certificates written to a test folder, and real TLS peers (Debian's
// `openssl s_server` / `s_client`, `curl`) run as child processes whose output is read
// cooperatively (the calling greenlet parks, the hub keeps serving).
//
// A missing peer binary is an error naming its Debian package (tests fail, never skip).
// Nothing here sleeps to synchronise: ReadUntil parks until the text appears or its bound ends.
#ifndef GEVENT_SSL_TESTING_H_
#define GEVENT_SSL_TESTING_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/watchers.h"
#include "hub/event.h"
#include "ssl/certificate.h"

namespace gevent::testing {

// MakeTestDir: a fresh folder under $TEST_TMPDIR (or /tmp).
std::string MakeTestDir(const std::string& prefix);
// WriteFile: `contents` to `path` (truncating).
absl::Status WriteFile(const std::string& path, absl::string_view contents);

// Pki: a CA made now, and a leaf it signed (by default for localhost, 127.0.0.1 and ::1), in
// memory and as files in `dir` (ca.pem, cert.pem, key.pem).
struct Pki {
  Certificate ca;
  Certificate leaf;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};
absl::StatusOr<Pki> MakePki(const std::string& dir, CertificateOptions leaf = {},
                            const std::string& name = "");

// Tool: the path of /usr/bin/<name>, or FailedPrecondition "... install the Debian package
// <package> (tools/setup.sh)".
absl::StatusOr<std::string> Tool(const std::string& name, const std::string& package);

// FreePort: a loopback TCP port that was free a moment ago (for a peer that takes a port number).
int FreePort();

// PeerProcess: a child process with a pipe on its stdin and one on its stdout+stderr. Its exit is
// seen through a libev child watcher on the hub's (default) loop, which reaps every child on
// SIGCHLD: a waitpid of our own would race with it and lose the status. Main thread's hub only.
class PeerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<PeerProcess>> Start(const std::vector<std::string>& argv);
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  // ~PeerProcess: SIGKILL and reap (if still running).
  ~PeerProcess();

  // Write: `data` to the child's stdin.
  absl::Status Write(absl::string_view data);
  void CloseStdin();
  // ReadUntil: reads output until it contains `needle` after `from` (an offset in output()),
  // or the output ends, or `timeout`. Returns the offset just past the needle; an error with
  // the output so far otherwise.
  absl::StatusOr<size_t> ReadUntil(absl::string_view needle, absl::Duration timeout,
                                   size_t from = 0);
  // ReadToEnd: all output until the child closes it (or timeout).
  absl::Status ReadToEnd(absl::Duration timeout);
  // Wait: the exit code once it exits within `timeout` (-signal for a signal), else SIGKILL and
  // DeadlineExceeded.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  void Kill(int signal);

  const std::string& output() const { return output_; }
  pid_t pid() const { return pid_; }

 private:
  PeerProcess() = default;
  // ReadSome: one read of output, parking up to `timeout`; false at the end of output.
  absl::StatusOr<bool> ReadSome(absl::Time deadline);
  pid_t pid_ = -1;
  std::unique_ptr<ChildWatcher> child_;
  Event exited_;
  int status_ = 0;
  int stdin_ = -1;
  int out_ = -1;
  bool out_done_ = false;
  std::string output_;
};

}  // namespace gevent::testing

#endif  // GEVENT_SSL_TESTING_H_
