// `loadgen merge A.json B.json ...`: one report of several runs (one loadgen per machine), as if
// one histogram had recorded every sample — the way HdrHistogram logs merge.
//
//   loadgen --target=10.0.0.5:9000 --duration=60s --json=/results/$HOST.json     # on each machine
//   loadgen merge /results/*.json --json=/results/all.json                          # anywhere
//
// Input: the --json documents of loadgen runs (report.h ToJson, "format_version" 1). Each carries
// its whole latency histogram ("latency_histogram", "uncorrected_latency_histogram" for an open
// loop, and "connect_latency_histogram" for the connects) as the non-empty buckets' (index,
// count) pairs with the exact count, min, max, sum (histogram.h, Histogram::ToJson), so the
// merge is exact: the histograms are added bucket by bucket, and every count, percentile, min and
// max of the merged report is the one a single histogram of all the samples gives (the mean too,
// up to the last bit of a double sum).
//
// Semantics of the other figures (MergeResults):
//   - summed: messages, bytes, errors (by kind, the redis/http ones included), the protocol
//     counters (report.h Count: SETs, GETs, hits, misses, HTTP status classes, server closes,
//     planned reconnects..., of the measured window and of the whole run), connects, clients,
//     client and server threads, connected clients, switches, loop iterations, callbacks, client
//     CPU, server CPU and server connection errors (each "not measured" if any run has it so),
//     --rate asked;
//   - wall time: the longest measured window; throughput = total messages / that window. The runs
//     are taken to have run *in parallel* (one per machine, started together, same --duration),
//     so this is the sum of the runs' rates when their windows are equal, and never more than that
//     sum when one run was cut short. Merging runs made one after another gives their histogram
//     exactly, but a throughput that is not the rate of any real load (use one machine's report);
//   - --duration asked: the longest; interrupted: if any run was (its signal is shown);
//   - calibration (ns per switch, per Sleep(0)): the mean over the runs that calibrated;
//   - target: the runs' --target (or "embedded") values, distinct, in order, comma-separated;
//   - connects/s: total connects / the longest window, as throughput;
//   - first server error, first malformed reply: the first run's that has one, in input order;
//   - message size, pipeline, the loop kind (closed / open), the protocol and its settings (redis:
//     ratio, keyspace, value_size; http: path) must be the same in every run (--header values
//     are not recorded and not compared);
//   - the per-second series is not merged (the runs' clocks are not aligned): merged JSON has
//     "series": [].
// The merged result is written with ToJson (--json=OUT), so merged files merge again.
//
// Exit codes (as the run's, config.h): 0 merged and the merged run counted no error and completed
// messages; 1 merged, but the runs counted errors or completed no message (the report is printed,
// as after a run); 2 usage: no input file, an unknown flag, --json with no path
// ("loadgen merge: ..."); 3 input: a file that cannot be read, is empty, is not JSON, is not a
// loadgen result, has another format or histogram version, another bucket layout, an inconsistent
// histogram, or a run that cannot be merged with the first (another message size, protocol,
// ratio, ...; the error names the field), or
// --json=OUT not writable. Every input error names the file and the problem, on one line:
// "loadgen merge: b.json: not JSON: expected a value at offset 0".
//
// A note for new RunResult fields: ResultFromJson and MergeResults list every field they read and
// how it merges; a field they do not know is ignored (it reads as its default), except an
// error kind in "errors_by_kind" that ErrorKindName does not name, a count in "counts" or
// "whole_run_counts" that CountName does not name, or a protocol other than echo, redis and http,
// which are input errors (summing without them would drop part of the runs).
//
// Thread-safety: pure functions, except MergeMain (reads and writes files, prints).
#ifndef LOADGEN_MERGE_H_
#define LOADGEN_MERGE_H_

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "loadgen/config.h"
#include "loadgen/report.h"

namespace loadgen {

// Input errors of `loadgen merge` exit as set-up failures do.
inline constexpr int kExitBadInput = kExitSetupFailed;

// ResultFromJson reads a ToJson document back (every field FormatReport prints; not the series).
// InvalidArgument naming the problem ("not JSON: ... at offset N", "format_version 2, this loadgen
// reads 1", "no field \"messages\"", "latency_histogram: ...").
absl::StatusOr<RunResult> ResultFromJson(absl::string_view text);

// MergeResults merges `runs` (at least one) as the file comment says; `names[i]` names runs[i]
// in errors ("b.json: message_size 128, a.json has 64").
absl::StatusOr<RunResult> MergeResults(const std::vector<RunResult>& runs,
                                       const std::vector<std::string>& names);

struct MergeArgs {
  std::vector<std::string> files;
  std::string json_path;  // Empty: no merged JSON.
  bool help = false;
};

// ParseMergeArgs reads `merge [--json=OUT] FILE...` (args[0] is "merge"; "--" ends the flags).
// InvalidArgument (usage) for an unknown flag, --json without a path, or no file (unless --help).
absl::StatusOr<MergeArgs> ParseMergeArgs(const std::vector<std::string>& args);

// MergeUsageText: what `loadgen merge --help` prints.
std::string MergeUsageText();

// MergeMain is `loadgen merge ...` after main saw argv[1] == "merge": args are argv[1..]. The
// report goes to `out`, errors to `err`. Returns the exit code (above).
int MergeMain(const std::vector<std::string>& args, std::FILE* out, std::FILE* err);

}  // namespace loadgen

#endif  // LOADGEN_MERGE_H_
