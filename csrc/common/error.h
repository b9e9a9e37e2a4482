#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kvcake {

// Every failure the core reports is an Error with a message meant for the JS caller:
// it names the argument (or operation) and the limit that was broken. The binding turns
// it into a JS Error (RangeError for ArgError) without further wording.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ArgError : Error {
  using Error::Error;
};

[[noreturn]] inline void throwArg(const std::string& msg) { throw ArgError(msg); }

// An ArgError whose message is the parts streamed in order (names, values, limits).
template <typename... T>
[[noreturn]] void throwArgParts(const T&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throwArg(s.str());
}

}  // namespace kvcake
