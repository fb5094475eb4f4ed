// Host-side logging to stderr: one write per line, so lines from different
// threads never interleave. stdout is reserved for protocol answers.
#pragma once

#include <string_view>

namespace wep::host_stub {

// Writes `line` plus '\n' to stderr. Thread-safe; never throws.
void log_line(std::string_view line) noexcept;

}  // namespace wep::host_stub
