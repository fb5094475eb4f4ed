// The one exception type of the host library.
#pragma once

#include <stdexcept>

namespace wep {

// Thrown by the host library for bad arguments, refused plugins and calls
// after close. The message names the file, plugin, effect or key at fault.
class HostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace wep
