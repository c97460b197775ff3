"""Repositories for an offline build with Debian's Bazel (bazel-bootstrap 4.2.3).

Bazel's built-in WORKSPACE suffix refers to rules_cc, rules_java and remote_coverage_tools, which it
would download on first use. These machines have no internet, so each is defined here first:

- rules_cc: a tiny local shim (third_party/bazel/rules_cc) mapping the rule names that
  @bazel_tools loads to the native rules. Debian's bazel-rules-cc is too new for Bazel 4.2.3.
- rules_java: Debian's bazel-rules-java package; Bazel needs it to register JDK toolchains even
  for a C++-only build.
- remote_coverage_tools: `bazel test` resolves it even without coverage; a local stub.

This is the only file outside the third_party/<lib> BUILD files that names a system path.
"""

def gevent_cpp_repositories():
    native.local_repository(
        name = "rules_cc",
        path = "third_party/bazel/rules_cc",
    )
    native.local_repository(
        name = "rules_java",
        path = "/usr/share/bazel/rules/java",
    )
    native.local_repository(
        name = "remote_coverage_tools",
        path = "third_party/bazel/remote_coverage_tools",
    )
