#include "ssl/testing.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "socket/address.h"
#include "socket/socket.h"
#include "hub/hub.h"
#include "socket/wait.h"

extern char** environ;

namespace gevent::testing {

std::string MakeTestDir(const std::string& prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/", prefix, "XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return "/tmp";
  return templ;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<Pki> MakePki(const std::string& dir, CertificateOptions leaf,
                            const std::string& name) {
  Pki pki;
  CertificateOptions ca;
  ca.common_name = "gevent_cpp test CA";
  ca.is_ca = true;
  ca.dns_names.clear();
  ca.ip_addresses.clear();
  absl::StatusOr<Certificate> made_ca = MakeSelfSignedCertificate(ca);
  if (!made_ca.ok()) return made_ca.status();
  pki.ca = *made_ca;
  leaf.issuer = &pki.ca;
  absl::StatusOr<Certificate> made = MakeSelfSignedCertificate(leaf);
  if (!made.ok()) return made.status();
  pki.leaf = *made;
  pki.ca_file = absl::StrCat(dir, "/", name, "ca.pem");
  pki.cert_file = absl::StrCat(dir, "/", name, "cert.pem");
  pki.key_file = absl::StrCat(dir, "/", name, "key.pem");
  for (auto [path, text] : {std::pair{pki.ca_file, pki.ca.certificate_pem},
                            std::pair{pki.cert_file, pki.leaf.certificate_pem},
                            std::pair{pki.key_file, pki.leaf.private_key_pem}}) {
    if (absl::Status s = WriteFile(path, text); !s.ok()) return s;
  }
  return pki;
}

absl::StatusOr<std::string> Tool(const std::string& name, const std::string& package) {
  const std::string path = absl::StrCat("/usr/bin/", name);
  if (access(path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is missing: install the Debian package ",
                                                      package, " (tools/setup.sh)"));
  }
  return path;
}

int FreePort() {
  absl::StatusOr<Socket> probe = Socket::Create(AF_INET, SOCK_STREAM);
  if (!probe.ok() || !probe->Bind(SocketAddress::Loopback(0)).ok()) return -1;
  const int port = probe->LocalAddress()->port();
  (void)probe->Close();
  return port;
}

absl::StatusOr<std::unique_ptr<PeerProcess>> PeerProcess::Start(
    const std::vector<std::string>& argv) {
  int in_pipe[2];
  int out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return absl::InternalError("pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (err != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", strerror(err)));
  }
  std::unique_ptr<PeerProcess> p(new PeerProcess());
  p->pid_ = pid;
  // Before the loop runs again (libev handles SIGCHLD from inside the loop).
  PeerProcess* self = p.get();
  p->child_ = std::make_unique<ChildWatcher>(GetHub().loop(), pid, [self] {
    self->status_ = self->child_->rstatus();
    self->child_->Stop();
    self->exited_.Set();
  });
  p->child_->Start();
  p->stdin_ = in_pipe[1];
  p->out_ = out_pipe[0];
  fcntl(p->out_, F_SETFL, fcntl(p->out_, F_GETFL) | O_NONBLOCK);
  return p;
}

PeerProcess::~PeerProcess() {
  if (pid_ > 0 && !exited_.IsSet()) {
    kill(pid_, SIGKILL);
    (void)exited_.Wait(absl::Seconds(30));  // Reaped by libev; the watcher tells.
  }
  if (child_ != nullptr) child_->Stop();
  CloseStdin();
  if (out_ >= 0) close(out_);
}

void PeerProcess::Kill(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

absl::Status PeerProcess::Write(absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(stdin_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("write to the peer's stdin: ", strerror(errno)));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

void PeerProcess::CloseStdin() {
  if (stdin_ >= 0) close(stdin_);
  stdin_ = -1;
}

absl::StatusOr<bool> PeerProcess::ReadSome(absl::Time deadline) {
  if (out_done_) return false;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(out_, buf, sizeof buf);
    if (n > 0) {
      output_.append(buf, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      out_done_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return absl::InternalError(strerror(errno));
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("timed out");
    if (absl::Status s = gevent::WaitRead(out_, left); !s.ok()) return s;
  }
}

absl::StatusOr<size_t> PeerProcess::ReadUntil(absl::string_view needle, absl::Duration timeout,
                                              size_t from) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const size_t at = absl::string_view(output_).find(needle, from);
    if (at != std::string::npos) return at + needle.size();
    absl::StatusOr<bool> more = ReadSome(deadline);
    if (!more.ok() || !*more) {
      return absl::DeadlineExceededError(absl::StrCat(
          "waiting for '", needle, "' from the peer: ",
          more.ok() ? "its output ended" : more.status().ToString(), "; output so far:\n", output_));
    }
  }
}

absl::Status PeerProcess::ReadToEnd(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<bool> more = ReadSome(deadline);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
}

absl::StatusOr<int> PeerProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  const absl::Time deadline = absl::Now() + timeout;
  const absl::Status read = ReadToEnd(timeout);  // All its output first.
  if (!exited_.Wait(std::max(absl::ZeroDuration(), deadline - absl::Now()))) {
    kill(pid_, SIGKILL);
    (void)exited_.Wait(absl::Seconds(30));
    pid_ = -1;
    return absl::DeadlineExceededError(absl::StrCat("the peer did not exit in time (reading its output: ",
                                                    read.ToString(), "); output:\n", output_));
  }
  pid_ = -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return -WTERMSIG(status_);
}

}  // namespace gevent::testing
