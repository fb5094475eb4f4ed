// Memory grows with use, not with configured capacity: host-stub with
// lane_capacity and the analytics plugin's buffer_capacity at their schema
// maxima (16,777,216 events each) reserves no more address space, and keeps
// no more resident, than the same host with the defaults.
#define BOOST_TEST_MODULE host_capacity_memory
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <wep/test/child_process.hpp>

#include "harness_support.hpp"

using wep::test::TempDir;
using wep::test::write_file;
using wep::test::ChildProcess;

namespace {

const std::string kHostStub = HOST_STUB_PATH;
const std::string kAnalytics = WEP_ANALYTICS_PATH;

// The pid of this process's child running `name` (the only one).
pid_t child_named(const std::string& name) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid_text = entry.path().filename();
    if (pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t parent = 0;
    rest >> state >> parent;
    if (parent == ::getpid() && line.substr(open + 1, close - open - 1) == name.substr(0, 15))
      return static_cast<pid_t>(std::stol(pid_text));
  }
  return -1;
}

// A /proc/<pid>/status field in KiB ("VmPeak", "VmHWM").
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

struct Footprint {
  long peak_virtual_kib = -1;
  long peak_resident_kib = -1;
};

// Runs host-stub with the analytics plugin, 1,000 mutations, and measures it.
Footprint run_host(const std::filesystem::path& dir, const std::string& capacities) {
  std::filesystem::create_directories(dir);
  write_file(dir / "host.json", R"({"data_dir": "data", )" + capacities + R"( "settings": {"analytics_enabled": true},
      "plugins": [{"path": ")" + kAnalytics +
                                    R"(", "config": {)" +
                                    (capacities.empty() ? std::string() : R"("buffer_capacity": 16777216, )") +
                                    R"("events": {"a": {"event_type": "a", "properties": ["n"]}}}}]})");
  // One malloc arena: glibc's per-thread arenas (64 MiB of address space each,
  // created on contention) would otherwise make VmPeak vary from run to run.
  ChildProcess child("/usr/bin/env", {"MALLOC_ARENA_MAX=1", kHostStub, "--config", (dir / "host.json").string()},
                     dir / "stderr.txt");
  for (int i = 0; i < 1000; ++i) {
    if (child.command("mutate a {\"n\": " + std::to_string(i) + "}").rfind("ok ", 0) != 0) return {};
  }
  child.command("stats");
  Footprint footprint;
  const pid_t pid = child_named("host-stub");
  footprint.peak_virtual_kib = status_kib(pid, "VmPeak");
  footprint.peak_resident_kib = status_kib(pid, "VmHWM");
  child.command("quit");
  child.wait_exit();
  return footprint;
}

}  // namespace

BOOST_AUTO_TEST_CASE(maximum_capacities_cost_no_memory_up_front) {
  TempDir dir;
  const Footprint defaults = run_host(dir.path() / "defaults", "");
  const Footprint maxima = run_host(dir.path() / "maxima", R"("lane_capacity": 16777216,)");
  BOOST_TEST_MESSAGE("defaults: VmPeak " << defaults.peak_virtual_kib << " KiB, VmHWM " << defaults.peak_resident_kib
                                         << " KiB; maxima: VmPeak " << maxima.peak_virtual_kib << " KiB, VmHWM "
                                         << maxima.peak_resident_kib << " KiB");
  BOOST_REQUIRE(defaults.peak_virtual_kib > 0);
  BOOST_REQUIRE(maxima.peak_virtual_kib > 0);
  // Preallocating 16.7 M lane or buffer slots would take hundreds of MiB.
  BOOST_TEST(maxima.peak_virtual_kib - defaults.peak_virtual_kib < 64 * 1024);
  BOOST_TEST(maxima.peak_resident_kib - defaults.peak_resident_kib < 32 * 1024);
}
