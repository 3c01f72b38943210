// core/error.h: the one error type wafer throws, and the check macros that build its messages.
// The library throws; only cli/ catches and picks the exit code. Messages read
// "[op] expected X, found Y (hint)" so a user can act on them.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace wafer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Builds a message from any streamable pieces: str_cat("[op] expected ", n, ", found ", m).
template <typename... Args>
std::string str_cat(const Args&... args) {
  return detail::cat(args...);
}

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

}  // namespace wafer

// User-facing check: throws wafer::Error with the streamed message.
#define WAFER_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) ::wafer::fail(::wafer::str_cat(__VA_ARGS__));  \
  } while (0)

// Internal invariant: a bug in wafer, not in the input; names file:line.
#define WAFER_ASSERT(cond)                                                                   \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ::wafer::fail(::wafer::str_cat("internal error: ", #cond, " at ", __FILE__, ":", __LINE__)); \
  } while (0)
