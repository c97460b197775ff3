// The command-line rule of the stack's binaries (socket/echo_server_main.cc, loadgen), as Go's
// `flag` package has it:
//
//   - a bad flag prints one line to stderr, "PROGRAM: --flag=value: what is allowed" (an unknown
//     flag, a value that does not parse, a value out of range, a stray argument), and the process
//     exits with kExitUsage (2);
//   - --help (and -help, --helpshort, --helpfull) prints the usage text on stdout and exits 0.
//
// Abseil's own parser would exit 1 on both (abseil 20220623: a parse error, and every --help*
// flag), so ParseFlagsOrExit checks argv with CheckArgs and handles the help flags before it calls
// absl::ParseCommandLine, which then only sets the values.
//
//   int main(int argc, char** argv) {
//     gevent::ParseFlagsOrExit("echo_server", argc, argv, usage);
//     if (absl::Status s = gevent::CheckFlagRange("--backlog", backlog, 1, 65535); !s.ok())
//       gevent::ExitWithFlagError("echo_server", s);
//
// Thread-safety: everything here reads or sets the process-wide flags; call it from main before
// starting threads.
#ifndef GEVENT_BASE_FLAGS_H_
#define GEVENT_BASE_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gevent {

inline constexpr int kExitUsage = 2;

// FlagError: InvalidArgument "FLAG=VALUE: WHY" (FLAG with its dashes, e.g. "--backlog").
absl::Status FlagError(absl::string_view flag, absl::string_view value, absl::string_view why);

// CheckFlagRange: OK when min <= value <= max, else FlagError "must be between MIN and MAX",
// followed by " (NOTE)" when `note` is not empty (why the bound is what it is).
absl::Status CheckFlagRange(absl::string_view flag, std::int64_t value, std::int64_t min,
                            std::int64_t max, absl::string_view note = "");

// CheckArgs looks at argv[1..argc) before abseil parses it: every flag must exist and its value
// must parse (checked with the flag's own parser), and there must be no positional argument.
// Returns a FlagError naming the offending argument. Parsing into a flag sets the value that the
// real parse sets again.
absl::Status CheckArgs(absl::string_view program, int argc, char** argv);

// UsageSpec: what --help prints.
struct UsageSpec {
  std::string purpose;    // After "PROGRAM: "; may hold example lines.
  std::string file_part;  // The flags listed by --help are those defined in files whose path
                          // contains this ("loadgen/"); --helpfull lists every flag.
  std::string footer;     // Printed last (exit codes...); may be empty.
};

// UsageText: "PROGRAM: PURPOSE", then each listed flag (sorted) with its default and help.
std::string UsageText(absl::string_view program, const UsageSpec& spec, bool all_flags = false);

// ExitWithFlagError prints "PROGRAM: MESSAGE" (one line) to stderr and exits with kExitUsage.
[[noreturn]] void ExitWithFlagError(absl::string_view program, const absl::Status& status);

// ParseFlagsOrExit: CheckArgs (a failure: ExitWithFlagError), then the help flags (UsageText on
// stdout, exit 0), then absl::ParseCommandLine.
void ParseFlagsOrExit(absl::string_view program, int argc, char** argv, const UsageSpec& spec);

}  // namespace gevent

#endif  // GEVENT_BASE_FLAGS_H_
