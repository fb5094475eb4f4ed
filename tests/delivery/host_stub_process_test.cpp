// The real `host-stub` executable (analytics plugin + supabase transport over
// real HTTPS to the loopback backend in this process), driven through its
// stdin protocol:
//   - the api key never appears in what host-stub prints (stderr, the
//     answers on stdout, the stats JSON) on any failure path, while the
//     failure itself is reported;
//   - two host-stub processes whose analytics "database" is one SQLite file
//     both flush it to one backend: every mutation arrives exactly once.
#define BOOST_TEST_MODULE delivery_host_stub_process
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <wep/test_backend/backend.hpp>
#include <vector>
#include <wep/test/child_process.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using wep::test::ChildProcess;
using namespace std::chrono_literals;
using wep::test::Backend;
using wep::test::BackendOptions;

namespace {

// A key no message would contain by chance: any 8 characters of it in a
// printed line count as a leak (a truncated or partly masked key too).
const std::string kSecretKey = "k3Y9qZ7xW2pLm5Rv8Tn4Hs6JdB1cF0gA";

// The first stretch of `text` that is 8 characters of the key, or "".
std::string leaked_part(const std::string& text) {
  for (size_t i = 0; i + 8 <= kSecretKey.size(); ++i) {
    const std::string part = kSecretKey.substr(i, 8);
    if (text.find(part) != std::string::npos) return part;
  }
  return {};
}

std::string file_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::filesystem::path write_config(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  const std::filesystem::path file = dir / name;
  std::ofstream(file) << text;
  return file;
}

AnalyticsOptions supabase_options(const std::string& url, const std::string& api_key) {
  AnalyticsOptions options;
  options.transport_plugin = WEP_SUPABASE_PATH;
  options.transport_config_json = supabase_config_json(url, api_key, wep::test::test_certificates().ca_file, 1000);
  options.backoff_initial_ms = 10;
  options.backoff_max_ms = 100;
  return options;
}

// The analytics plugin's last_error in one `stats` answer ("" when none).
std::string last_error_of(const std::string& stats_line) {
  const std::string key = "\"last_error\":\"";
  const size_t at = stats_line.find("\"analytics\"");
  const size_t start = at == std::string::npos ? std::string::npos : stats_line.find(key, at);
  if (start == std::string::npos) return {};
  const size_t end = stats_line.find('"', start + key.size());
  return stats_line.substr(start + key.size(), end - start - key.size());
}

// Runs host-stub against `url` with kSecretKey, makes 5 mutations, goes
// online and waits until the failure shows in stats; then quits. Checks that
// the failure was reported, nothing was delivered, and no part of the key is
// in anything host-stub printed. `expect_in_error`: a part of last_error.
void expect_failure_without_the_key(const std::string& what, const std::string& url,
                                    const std::string& expect_in_error = "") {
  BOOST_TEST_CONTEXT(what) {
    TempDir dir("wep-secret");
    const auto config =
        write_config(dir.path(), "host-stub.json",
                     host_stub_config_json(dir.path() / "data", WEP_ANALYTICS_PATH, supabase_options(url, kSecretKey)));
    const std::filesystem::path log = dir.path() / "host-stub.log";
    std::string printed;  // every answer on stdout
    {
      ChildProcess child(HOST_STUB_PATH, {"--config", config.string()}, log);
      auto command = [&](const std::string& line) {
        std::string answer = child.command(line);
        printed += answer + "\n";
        return answer;
      };
      for (int n = 1; n <= 5; ++n)
        BOOST_TEST_REQUIRE(command("mutate note.created " + payload(n)).rfind("ok ", 0) == 0u);
      BOOST_TEST_REQUIRE(command("online") == "ok");
      std::string stats;
      BOOST_TEST(eventually([&] {
        stats = command("stats");
        return !last_error_of(stats).empty();
      }));
      BOOST_TEST_MESSAGE(what << ": last_error " << last_error_of(stats));
      if (!expect_in_error.empty()) {
        BOOST_TEST(last_error_of(stats).find(expect_in_error) != std::string::npos, last_error_of(stats));
      }
      BOOST_TEST(command("pending") == "pending 5");  // failed: every row kept
      BOOST_TEST(command("quit") == "bye");
      BOOST_TEST(child.wait_exit(30s).value_or(-1) == 0);
    }
    const std::string stderr_text = file_text(log);
    BOOST_TEST(!stderr_text.empty());  // the failure is logged too
    BOOST_TEST(leaked_part(printed).empty(), "the key is in stdout: " << printed);
    BOOST_TEST(leaked_part(stderr_text).empty(), "the key is in stderr: " << stderr_text);
  }
}

BackendOptions backend_with_the_key() {
  BackendOptions options;
  options.api_key = kSecretKey;
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_api_key_is_never_printed_on_any_failure_path) {
  {
    Backend backend;  // expects another key: 401
    expect_failure_without_the_key("401 wrong key", backend.url(), "401");
    BOOST_TEST(backend.counters().responses_by_status[401] >= 1u);
  }
  for (int status : {403, 404, 500}) {
    Backend backend(backend_with_the_key());
    backend.fail_next(1000000, status);
    expect_failure_without_the_key(std::to_string(status), backend.url(), std::to_string(status));
  }
  {
    Backend backend(backend_with_the_key());
    backend.throttle_next(1000000, "1");
    expect_failure_without_the_key("429", backend.url(), "429");
  }
  {
    Backend backend(backend_with_the_key());
    backend.delay_next(1000000, 60s);  // every reply held past the 1 s timeout
    expect_failure_without_the_key("timeout", backend.url());
  }
  // .invalid never resolves (RFC 6761): the lookup fails.
  expect_failure_without_the_key("a name that does not resolve", "https://no-such-project.invalid");
  {
    Backend backend(backend_with_the_key());
    backend.reset_before_reply_next(1000000);
    expect_failure_without_the_key("connection reset", backend.url());
    BOOST_TEST(backend.counters().resets >= 1u);
  }
  {
    BackendOptions options = backend_with_the_key();
    options.cert_file = wep::test::test_certificates().untrusted_server_cert;
    options.key_file = wep::test::test_certificates().untrusted_server_key;
    Backend backend(options);
    expect_failure_without_the_key("untrusted certificate", backend.url());
  }
  {
    std::string url;
    {
      Backend gone(backend_with_the_key());
      url = gone.url();
    }  // nothing listens on its port any more
    expect_failure_without_the_key("unreachable port", url);
  }
}

BOOST_AUTO_TEST_CASE(the_api_key_is_never_printed_when_a_config_is_refused_at_start) {
  struct Refused {
    std::string what;
    std::string url;
    std::string api_key;
    std::string named_key;  // the config key the refusal names
  };
  const std::vector<Refused> cases = {
      {"a bad url", "ftp://localhost:1", kSecretKey, "key 'url'"},
      {"a bad timeout", "https://localhost:1", kSecretKey, "key 'timeout_ms'"},
      {"a key too long", "https://localhost:1", std::string(4100, 'x') + kSecretKey, "key 'api_key'"},
  };
  for (const Refused& refused : cases) {
    BOOST_TEST_CONTEXT(refused.what) {
      TempDir dir("wep-secret");
      AnalyticsOptions options = supabase_options(refused.url, refused.api_key);
      if (refused.what == "a bad timeout") {
        options.transport_config_json =
            supabase_config_json(refused.url, refused.api_key, wep::test::test_certificates().ca_file, 1);
      }
      const auto config = write_config(dir.path(), "host-stub.json",
                                       host_stub_config_json(dir.path() / "data", WEP_ANALYTICS_PATH, options));
      const std::filesystem::path log = dir.path() / "host-stub.log";
      std::string printed;
      {
        ChildProcess child(HOST_STUB_PATH, {"--config", config.string()}, log);
        child.close_stdin();
        while (auto line = child.read_line(30s)) printed += *line + "\n";
        BOOST_TEST(child.wait_exit(30s).value_or(-1) == 2);
      }
      const std::string stderr_text = file_text(log);
      BOOST_TEST(stderr_text.find(refused.named_key) != std::string::npos, stderr_text);
      BOOST_TEST(leaked_part(printed).empty(), "the key is in stdout: " << printed);
      BOOST_TEST(leaked_part(stderr_text).empty(), "the key is in stderr: " << stderr_text);
    }
  }
}

// Two hosts with their own data dirs share the analytics queue file (an
// absolute "database"); both go online (after both have started) and flush it
// to one backend while both mutate. Every mutation arrives once, none is
// lost, and the shared queue ends empty for both.
BOOST_AUTO_TEST_CASE(two_processes_flushing_one_queue_file_deliver_every_row_once) {
  Backend backend;
  TempDir dir("wep-two-hosts");
  AnalyticsOptions options = supabase_options(backend.url(), backend.api_key());
  options.database = (dir.path() / "shared-analytics.db").string();
  options.batch_size = 20;
  options.flush_interval_ms = 10;

  std::vector<std::unique_ptr<ChildProcess>> hosts;
  for (const char* name : {"a", "b"}) {
    const auto config = write_config(dir.path(), std::string(name) + ".json",
                                     host_stub_config_json(dir.path() / name, WEP_ANALYTICS_PATH, options));
    hosts.push_back(std::make_unique<ChildProcess>(HOST_STUB_PATH,
                                                   std::vector<std::string>{"--config", config.string()},
                                                   dir.path() / (std::string(name) + ".log")));
  }
  // Start barrier: both answer (both plugins have opened the shared file)
  // before either goes online.
  for (auto& host : hosts) BOOST_TEST_REQUIRE(host->command("pending") == "pending 0");

  constexpr int kPerHost = 300;
  for (int i = 0; i < kPerHost; ++i) {
    if (i == 50) {
      for (auto& host : hosts) BOOST_TEST_REQUIRE(host->command("online") == "ok");
    }
    for (size_t h = 0; h < hosts.size(); ++h) {
      const int64_t n = static_cast<int64_t>(h) * 100000 + i;  // unique per mutation
      BOOST_TEST_REQUIRE(hosts[h]->command("mutate note.created " + payload(n)).rfind("ok ", 0) == 0u);
    }
  }
  for (auto& host : hosts) BOOST_TEST(host->command("wait-delivered 60000", 90s) == "pending 0");
  for (auto& host : hosts) BOOST_TEST(host->command("pending") == "pending 0");
  for (auto& host : hosts) {
    BOOST_TEST(host->command("quit") == "bye");
    BOOST_TEST(host->wait_exit(30s).value_or(-1) == 0);
  }

  std::map<int64_t, int> arrivals;
  std::set<std::string> ids;
  for (const auto& row : backend.rows()) {
    ++arrivals[n_of(row.properties_json)];
    ids.insert(row.event_id);
  }
  int missing = 0, duplicated = 0;
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < kPerHost; ++i) {
      const auto it = arrivals.find(h * 100000 + i);
      if (it == arrivals.end()) {
        if (++missing <= 5) BOOST_ERROR("n=" << h * 100000 + i << " never arrived");
      } else if (it->second != 1) {
        if (++duplicated <= 5) BOOST_ERROR("n=" << h * 100000 + i << " arrived " << it->second << " times");
      }
    }
  }
  BOOST_TEST(missing == 0);
  BOOST_TEST(duplicated == 0);
  BOOST_TEST(backend.row_count() == 2u * kPerHost);
  BOOST_TEST(ids.size() == backend.row_count());
  BOOST_TEST(backend.counters().contract_violations == 0u);
  BOOST_TEST(queue_rows(options.database) == 0);
  BOOST_TEST_MESSAGE(backend.counters().insert_requests << " requests, " << backend.counters().duplicates_ignored
                                                        << " duplicate rows ignored by the server");
}
