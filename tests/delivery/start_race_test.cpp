// Two real host-stub processes started at the same instant on one fresh
// data_dir (the host database and the analytics queue file created by both
// at once): both start and answer; neither fails with "database is locked".
//
// Each child is spawned as `sh -c 'read go; exec host-stub ...'`, so both
// wait on their stdin; one "go" line to each releases them together (the
// start barrier). 30 trials, each with a fresh directory.
#define BOOST_TEST_MODULE delivery_start_race
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <wep/test/child_process.hpp>
#include <wep/test/temp_dir.hpp>

using wep::test::ChildProcess;
namespace fs = std::filesystem;

namespace {

constexpr int kTrials = 30;

std::string file_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string host_stub_config(const fs::path& data_dir) {
  return R"({"data_dir": ")" + data_dir.string() + R"(", "plugins": [{"path": ")" + std::string(WEP_ANALYTICS_PATH) +
         R"(", "config": {"events": {"note.created": {"event_type": "note_created", "properties": ["n"]}}}}]})";
}

// host-stub held at a start barrier until release().
class BarrierChild {
 public:
  BarrierChild(const fs::path& config, const fs::path& log)
      : child_("/bin/sh", {"-c", "read go && exec \"$0\" \"$@\"", HOST_STUB_PATH, "--config", config.string()}, log) {}
  void release() { BOOST_TEST_REQUIRE(child_.write_line("go")); }
  ChildProcess& process() { return child_; }

 private:
  ChildProcess child_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(two_host_stubs_started_at_once_on_a_fresh_data_dir_both_start) {
  for (int trial = 0; trial < kTrials; ++trial) {
    BOOST_TEST_CONTEXT("trial " << trial) {
      wep::test::TempDir dir;
      const fs::path config = dir.path() / "host-stub.json";
      std::ofstream(config) << host_stub_config(dir.path() / "data");
      const fs::path log_a = dir.path() / "a.log";
      const fs::path log_b = dir.path() / "b.log";
      BarrierChild a(config, log_a);
      BarrierChild b(config, log_b);
      a.release();
      b.release();
      for (ChildProcess* child : {&a.process(), &b.process()}) {
        std::string answer;
        BOOST_CHECK_NO_THROW(answer = child->command("mutate note.created {\"n\": 1}"));
        BOOST_TEST(answer.rfind("ok ", 0) == 0u, answer);
        std::string stats;
        BOOST_CHECK_NO_THROW(stats = child->command("stats"));
        BOOST_TEST(stats.find("\"analytics\"") != std::string::npos, stats);
        BOOST_TEST(stats.find("\"last_error\":null") != std::string::npos, stats);
        BOOST_TEST(stats.find("locked") == std::string::npos, stats);
      }
      for (ChildProcess* child : {&a.process(), &b.process()}) {
        child->close_stdin();
        BOOST_TEST(child->wait_exit(std::chrono::seconds(30)).value_or(-1) == 0);
      }
      for (const fs::path& log : {log_a, log_b}) {
        BOOST_TEST(file_text(log).find("locked") == std::string::npos, file_text(log));
      }
    }
  }
}
