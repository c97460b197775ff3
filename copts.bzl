"""Compiler options for the project's own code (not for third_party)."""

GEVENT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",  # Callback signatures and interface overrides often ignore arguments.
    "-Wno-missing-field-initializers",  # libev's C structs are zero-initialised on purpose.
]

# GoogleTest's TEST macros and libev's ev.h macros trip -Wextra in ways that are not bugs.
GEVENT_TEST_COPTS = GEVENT_COPTS + [
    "-Wno-sign-compare",
]
