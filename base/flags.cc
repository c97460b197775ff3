#include "base/flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace gevent {
namespace {

// What a value of the flag's type looks like, for a value that does not parse.
std::string Allowed(const absl::CommandLineFlag& flag, const std::string& parse_error) {
  if (flag.IsOfType<bool>()) return "must be true or false";
  if (flag.IsOfType<int>() || flag.IsOfType<std::int64_t>()) return "must be an integer";
  if (flag.IsOfType<double>()) return "must be a number";
  if (flag.IsOfType<absl::Duration>()) return "must be a duration with a unit (10s, 500ms, 1m)";
  return absl::StrCat("does not parse: ", parse_error);
}

bool IsHelpFlag(absl::string_view name) {
  return name == "help" || name == "helpshort" || name == "helpfull";
}

}  // namespace

absl::Status FlagError(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, "=", value, ": ", why));
}

absl::Status CheckFlagRange(absl::string_view flag, std::int64_t value, std::int64_t min,
                            std::int64_t max, absl::string_view note) {
  if (value >= min && value <= max) return absl::OkStatus();
  return FlagError(flag, absl::StrCat(value),
                   absl::StrCat("must be between ", min, " and ", max,
                                note.empty() ? "" : absl::StrCat(" (", note, ")")));
}

absl::Status CheckArgs(absl::string_view program, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected argument \"", argv[i + 1], "\" (", program, " takes flags only)"));
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\" (", program, " takes flags only)"));
    }
    absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    absl::string_view name = body;
    absl::string_view value;
    const std::size_t eq = body.find('=');
    const bool has_value = eq != absl::string_view::npos;
    if (has_value) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
    }
    // Abseil's usage and flag-source flags are handled by absl::ParseCommandLine itself.
    if (IsHelpFlag(name) || name == "helppackage" || name == "version" ||
        name == "only_check_args") {
      continue;
    }
    if (name == "helpon" || name == "helpmatch" || name == "flagfile" || name == "fromenv" ||
        name == "tryfromenv" || name == "undefok") {
      if (!has_value) ++i;  // Its value is the next argument.
      continue;
    }
    const std::string dashed = absl::StrCat("--", name);
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      // --noprogress form of a boolean flag.
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr || flag->IsRetired()) {
      return absl::InvalidArgumentError(
          absl::StrCat(has_value ? absl::StrCat(dashed, "=", value) : dashed,
                       ": unknown flag (see --help)"));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) continue;
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(dashed, ": missing its value"));
      value = argv[++i];
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) return FlagError(dashed, value, Allowed(*flag, error));
  }
  return absl::OkStatus();
}

std::string UsageText(absl::string_view program, const UsageSpec& spec, bool all_flags) {
  std::string out = absl::StrCat(program, ": ", spec.purpose, "\n\nFlags:\n");
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (all_flags || absl::StrContains(flag->Filename(), spec.file_part)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  for (const absl::CommandLineFlag* flag : flags) {
    const std::string value = flag->DefaultValue();
    absl::StrAppend(&out, "  --", flag->Name(), " (default: ",
                    flag->IsOfType<std::string>() ? absl::StrCat("\"", value, "\"") : value,
                    ")\n      ", flag->Help(), "\n");
  }
  if (!spec.footer.empty()) absl::StrAppend(&out, "\n", spec.footer, "\n");
  return out;
}

void ExitWithFlagError(absl::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", std::string(program).c_str(),
               std::string(status.message()).c_str());
  std::fflush(stderr);
  std::exit(kExitUsage);
}

void ParseFlagsOrExit(absl::string_view program, int argc, char** argv, const UsageSpec& spec) {
  absl::SetProgramUsageMessage(spec.purpose);
  absl::FlagsUsageConfig usage;
  // Abseil's --helppackage and friends list this program's flags (its default filter matches only
  // files named after the binary).
  const std::string file_part = spec.file_part;
  usage.contains_help_flags = [file_part](absl::string_view file) {
    return absl::StrContains(file, file_part);
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);

  if (absl::Status s = CheckArgs(program, argc, argv); !s.ok()) ExitWithFlagError(program, s);
  // Abseil's --help exits with status 1; asking for help is not an error here.
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    if (IsHelpFlag(arg)) {
      std::fputs(UsageText(program, spec, arg == "helpfull").c_str(), stdout);
      std::fflush(stdout);
      std::exit(0);
    }
  }
  absl::ParseCommandLine(argc, argv);
}

}  // namespace gevent
