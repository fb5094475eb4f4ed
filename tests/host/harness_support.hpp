// Helpers for the suites that drive the harness host (host_stub).
#pragma once

#include <filesystem>
#include <host_stub/host.hpp>
#include <vector>

#include "test_support.hpp"

namespace test_support {

// Options for a host in `data_dir` loading the given plugins.
inline host_stub::HostOptions options_for(const std::filesystem::path& data_dir,
                                          std::vector<host_stub::PluginSpec> plugins = {}) {
  host_stub::HostOptions options;
  options.data_dir = data_dir;
  options.plugins = std::move(plugins);
  return options;
}

}  // namespace test_support
