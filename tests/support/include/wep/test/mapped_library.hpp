// Whether a shared object is mapped in this process, without loading it:
// how the suites prove that an unloaded plugin really left.
#pragma once

#include <dlfcn.h>

#include <string>

namespace wep::test {

// dlopen with RTLD_NOLOAD maps nothing; the extra reference it takes on a
// mapped object is dropped at once.
inline bool is_mapped(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return false;
  ::dlclose(handle);
  return true;
}

}  // namespace wep::test
