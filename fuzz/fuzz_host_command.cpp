// libFuzzer target: host-stub's command line. Each input is a script of
// command lines run by one CommandInterpreter against a real Host (SQLite
// event log, settings store) without plugins; every line must get exactly
// one answer line and nothing may crash. Commands that load code or wait
// (load, reload, unload, sleep, wait-delivered, quit) are skipped: the
// fuzzer must not dlopen files from the machine or stall.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <wep/host_stub/host.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace {

wep::host_stub::Host& host() {
  static const std::filesystem::path data_dir = [] {
    const auto dir = std::filesystem::temp_directory_path() / ("wep-fuzz-host-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir;
  }();
  static wep::host_stub::Host instance([] {
    wep::host_stub::HostOptions options;
    options.data_dir = data_dir;
    return options;
  }());
  return instance;
}

bool skipped(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  for (std::string_view word : {"load", "reload", "unload", "sleep", "wait-delivered", "quit"}) {
    if (line.substr(0, word.size()) == word) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wep::host_stub::CommandInterpreter interpreter(host());
  std::string_view script(reinterpret_cast<const char*>(data), size);
  while (!script.empty()) {
    const size_t newline = script.find('\n');
    const std::string_view line = script.substr(0, newline);
    script.remove_prefix(newline == std::string_view::npos ? script.size() : newline + 1);
    if (skipped(line)) continue;
    bool quit = false;
    const std::string answer = interpreter.execute(line, quit);
    if (answer.empty() || answer.find('\n') != std::string::npos || quit) std::abort();
  }
  return 0;
}
