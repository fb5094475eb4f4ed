#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace wep::host_stub {

void log_line(std::string_view line) noexcept {
  try {
    std::string text(line);
    text.push_back('\n');
    // A single write() of a line is atomic enough for logs (no interleaving
    // within PIPE_BUF); no lock needed, and nothing to flush.
    const char* data = text.data();
    size_t left = text.size();
    while (left > 0) {
      const ssize_t n = ::write(STDERR_FILENO, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      data += n;
      left -= static_cast<size_t>(n);
    }
  } catch (...) {
    // Logging must never fail the caller.
  }
}

}  // namespace wep::host_stub
