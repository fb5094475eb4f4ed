// Helpers for the suites that drive the harness host (host_stub).
#pragma once

#include <filesystem>
#include <wep/host_stub/host.hpp>
#include <vector>

#include "test_support.hpp"

namespace wep::test {

// Options for a host in `data_dir` loading the given plugins.
inline wep::host_stub::HostOptions options_for(const std::filesystem::path& data_dir,
                                          std::vector<wep::host_stub::PluginSpec> plugins = {}) {
  wep::host_stub::HostOptions options;
  options.data_dir = data_dir;
  options.plugins = std::move(plugins);
  return options;
}

}  // namespace wep::test
