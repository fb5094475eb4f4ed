// Wake-ups of threads, counted from /proc/self/task/*/status: the context
// switches (voluntary + involuntary) of the threads a component started.
// Used by bench_idle and by the test that fails when an idle plugin polls.
//
// Thread safety: one owner; reads /proc only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>

namespace wep::bench {

namespace fs = std::filesystem;

// Context switches (voluntary + involuntary) of one thread of this process, as
// /proc/self/task/<tid>/status counts them; every one is a wake-up or a
// preemption. Threads are told apart by id and named by their comm.
struct ThreadSwitches {
  std::string name;
  int64_t switches = 0;
};

// Every thread of this process now, by thread id. A thread that ends while
// being read is left out.
inline std::map<long, ThreadSwitches> thread_switches() {
  std::map<long, ThreadSwitches> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
    long tid = 0;
    try {
      tid = std::stol(entry.path().filename().string());
    } catch (...) {
      continue;
    }
    std::ifstream in(entry.path() / "status");
    ThreadSwitches t;
    bool found = false;
    for (std::string line; std::getline(in, line);) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string key = line.substr(0, colon);
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      if (key == "Name") {
        t.name = value;
      } else if (key == "voluntary_ctxt_switches" || key == "nonvoluntary_ctxt_switches") {
        t.switches += std::stoll(value);
        found = true;
      }
    }
    if (found) out[tid] = std::move(t);
  }
  return out;
}

// Wake-ups of the threads a component starts: construct it before the
// component starts (the threads alive then, e.g. the caller's, are never
// counted), then begin() and end() a window. end() counts the context
// switches within the window of every thread that was not alive at
// construction (a thread started inside the window counts from zero).
class StartedThreadSwitches {
 public:
  StartedThreadSwitches() : baseline_(thread_switches()) {}
  void begin() { start_ = thread_switches(); }
  struct Window {
    int64_t switches = 0;
    std::map<long, ThreadSwitches> threads;  // per started thread, switches within the window
    std::string describe() const {
      std::string text;
      for (const auto& [tid, t] : threads) {
        text += (text.empty() ? "" : ", ") + t.name + " " + std::to_string(t.switches);
      }
      return text.empty() ? "no started threads" : text;
    }
  };
  Window end() const {
    Window w;
    for (auto& [tid, t] : thread_switches()) {
      if (baseline_.count(tid)) continue;
      const auto before = start_.find(tid);
      ThreadSwitches delta{t.name, t.switches - (before == start_.end() ? 0 : before->second.switches)};
      w.switches += delta.switches;
      w.threads[tid] = std::move(delta);
    }
    return w;
  }

 private:
  std::map<long, ThreadSwitches> baseline_;
  std::map<long, ThreadSwitches> start_;
};

}  // namespace wep::bench
