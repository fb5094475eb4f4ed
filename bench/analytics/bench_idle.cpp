// bench_idle: how often the analytics plugin's threads wake up when there is
// nothing to do. Loads the real plugin file (libwep_analytics.so) with a minimal
// in-process host and the NDJSON transport (libwep_ndjson.so), default
// flush_interval_ms and maintenance_interval_ms, and counts the context
// switches (voluntary + involuntary, /proc/self/task/*/status) of every
// thread the plugin started (the threads alive before it started are not
// counted) over a measured window, in three states:
//   offline                        nothing may wake but the maintenance timer;
//   online, empty queue            at most one wake-up per flush_interval_ms
//                                  (the plugin's contract is none);
//   online, idle after a delivery  one row stored and delivered just before
//                                  the window: the flusher looks once more
//                                  after flush_interval_ms, then sleeps.
// Each figure is printed in wake-ups per minute with the limit next to it.
// Not run by CTest. Usage: bench_idle [window_seconds] [maintenance_interval_ms]
// (defaults 60 and the plugin's 60000; a long maintenance interval shows
// what is left without the maintenance tick).
#include <Poco/TemporaryFile.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <wep/bench/plugin_driver.hpp>
#include <wep/bench/thread_switches.hpp>

using wep::bench::now_ms;
using wep::bench::PluginDriver;
using wep::bench::StartedThreadSwitches;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUserId = "3f2b8a4e-7c1d-4e5f-9a6b-0c1d2e3f4a5b";
// The plugin's defaults (README, "Analytics plugin config").
constexpr int kFlushIntervalMs = 5000;
constexpr int kDefaultMaintenanceIntervalMs = 60000;
// Lets start-up and a state change settle before a window opens.
constexpr auto kSettle = std::chrono::seconds(2);

std::string config(const std::filesystem::path& dir, int maintenance_interval_ms) {
  return std::string(R"({"events": {"note.created": {"event_type": "note_created", "properties": ["kind"]}},)") +
         R"( "maintenance_interval_ms": )" + std::to_string(maintenance_interval_ms) + "," +
         R"( "transport": {"plugin": ")" + WEP_NDJSON_PATH + R"(", "config": {"path": ")" +
         (dir / "events.ndjson").string() + R"("}}})";
}

void report(const char* state, const StartedThreadSwitches::Window& w, double seconds, int maintenance_interval_ms) {
  const double per_minute = static_cast<double>(w.switches) * 60.0 / seconds;
  std::printf("%s: %.1f wake-ups per minute (%lld context switches in %.0f s; %s)\n", state, per_minute,
              static_cast<long long>(w.switches), seconds, w.describe().c_str());
  std::printf(
      "  limit: 60000/flush_interval_ms per minute online (%d with flush_interval_ms %d), 0 offline (plus "
      "maintenance: one wake-up per maintenance_interval_ms %d)\n",
      60000 / kFlushIntervalMs, kFlushIntervalMs, maintenance_interval_ms);
  std::fflush(stdout);
}

StartedThreadSwitches::Window measure(StartedThreadSwitches& counter, double seconds) {
  counter.begin();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return counter.end();
}

}  // namespace

int main(int argc, char** argv) {
  const double window = argc > 1 ? std::max(1.0, std::atof(argv[1])) : 60.0;
  const int maintenance = argc > 2 ? std::max(1, std::atoi(argv[2])) : kDefaultMaintenanceIntervalMs;
  Poco::TemporaryFile temp_dir;  // removed with everything in it at exit
  temp_dir.createDirectories();
  const std::filesystem::path dir = temp_dir.path();
  std::printf("window: %.0f s per state; flush_interval_ms %d (default), maintenance_interval_ms %d%s\n", window,
              kFlushIntervalMs, maintenance, maintenance == kDefaultMaintenanceIntervalMs ? " (default)" : "");

  StartedThreadSwitches counter;  // before the plugin starts: this thread is not counted
  PluginDriver plugin(WEP_ANALYTICS_PATH, config(dir, maintenance), dir / "data", kUserId);

  std::this_thread::sleep_for(kSettle);
  report("offline", measure(counter, window), window, maintenance);

  plugin.connectivity(true);
  std::this_thread::sleep_for(kSettle);
  report("online, empty queue", measure(counter, window), window, maintenance);

  plugin.mutation("note.created", R"({"kind": "text"})", 1, now_ms());
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (plugin.stat("/delivered") < 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (plugin.stat("/delivered") < 1) {
    std::fprintf(stderr, "bench_idle: the row was not delivered within 30 s\n");
    return 1;
  }
  report("online, idle after a delivery", measure(counter, window), window, maintenance);

  plugin.stop();
  return 0;
}
