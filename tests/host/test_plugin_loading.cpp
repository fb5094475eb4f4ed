// Loading, refusing, stopping and unloading plugins through the real host
// (Boost.DLL, real dlopen/dlclose).
#define BOOST_TEST_MODULE host_plugin_loading
#include <boost/test/unit_test.hpp>
#include <cstddef>
#include <cstdio>
#include <vector>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>

#include "harness_support.hpp"

using wep::host_stub::Host;
using wep::host_stub::HostError;
using wep::host_stub::PluginSpec;
using wep::test::is_mapped;
using wep::test::json_bool;
using wep::test::json_int;
using wep::test::options_for;
using wep::test::TempDir;

namespace {

const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;
const std::string kEffectV10 = TEST_EFFECT_PLUGIN_V1_0_PATH;
const std::string kMajor2 = TEST_PLUGIN_MAJOR2_PATH;
const std::string kMinorNewer = TEST_PLUGIN_MINOR_NEWER_PATH;
const std::string kNoEntry = TEST_NO_ENTRY_PATH;
const std::string kTransport = TEST_TRANSPORT_PLUGIN_PATH;

// The HostError message of constructing a host with `spec`, or "" if it loads.
std::string refusal_of(const PluginSpec& spec) {
  TempDir dir;
  try {
    Host host(options_for(dir.path(), {spec}));
  } catch (const HostError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_CASE(loads_and_starts_the_test_plugin) {
  TempDir dir;
  {
    Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
    BOOST_TEST(is_mapped(kEffect));
    const std::string stats = host.stats_json();
    // The plugin saw the host services at start.
    BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect/analytics_enabled") == "true");
    BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect/pseudonymous_id") == host.pseudonymous_id());
    BOOST_TEST(host.mutate("note.created", R"({"chars":5})") == 1);
    BOOST_TEST(host.pending().value() == 1);  // offline: stored, not delivered
    BOOST_TEST(json_int(host.stats_json(), "/plugins/test_effect/mutations") == 1);
    BOOST_TEST(std::filesystem::is_directory(dir.path() / "plugins" / "test_effect"));
  }
  BOOST_TEST(!is_mapped(kEffect));
}

BOOST_AUTO_TEST_CASE(refuses_a_newer_major_naming_the_file_and_both_versions) {
  const std::string message = refusal_of({kMajor2});
  BOOST_TEST_MESSAGE(message);
  const std::string theirs = std::to_string(WEP_API_VERSION_MAJOR + 1) + "." + std::to_string(WEP_API_VERSION_MINOR);
  const std::string ours = std::to_string(WEP_API_VERSION_MAJOR) + "." + std::to_string(WEP_API_VERSION_MINOR);
  BOOST_TEST(contains(message, kMajor2));
  BOOST_TEST(contains(message, theirs));
  BOOST_TEST(contains(message, ours));
  BOOST_TEST(!is_mapped(kMajor2));
}

BOOST_AUTO_TEST_CASE(refuses_a_newer_minor_naming_the_file_and_both_versions) {
  const std::string message = refusal_of({kMinorNewer});
  BOOST_TEST_MESSAGE(message);
  const std::string theirs = std::to_string(WEP_API_VERSION_MAJOR) + "." + std::to_string(WEP_API_VERSION_MINOR + 1);
  const std::string ours = std::to_string(WEP_API_VERSION_MAJOR) + "." + std::to_string(WEP_API_VERSION_MINOR);
  BOOST_TEST(contains(message, kMinorNewer));
  BOOST_TEST(contains(message, theirs));
  BOOST_TEST(contains(message, ours));
  BOOST_TEST(!is_mapped(kMinorNewer));
}

BOOST_AUTO_TEST_CASE(refuses_a_library_without_entry_point) {
  const std::string message = refusal_of({kNoEntry});
  BOOST_TEST_MESSAGE(message);
  BOOST_TEST(contains(message, kNoEntry));
  BOOST_TEST(contains(message, WEP_ENTRY_POINT_NAME));
  BOOST_TEST(!is_mapped(kNoEntry));
}

BOOST_AUTO_TEST_CASE(refuses_a_missing_file_and_a_transport) {
  const std::string missing = refusal_of({"/nonexistent/libnothing.so"});
  BOOST_TEST(contains(missing, "/nonexistent/libnothing.so"));
  const std::string transport = refusal_of({kTransport});
  BOOST_TEST_MESSAGE(transport);
  BOOST_TEST(contains(transport, kTransport));
  BOOST_TEST(contains(transport, "transport"));
  BOOST_TEST(!is_mapped(kTransport));
}

BOOST_AUTO_TEST_CASE(a_plugin_whose_start_fails_is_refused_with_its_error_and_everything_unloaded) {
  TempDir dir;
  std::string message;
  try {
    // The first plugin starts (with a thread), the second fails: both must go.
    Host host(options_for(dir.path(), {{kEffect, R"({"start_thread":true})"}, {kTransport, "{}"}}));
  } catch (const HostError& e) {
    message = e.what();
  }
  BOOST_TEST(contains(message, kTransport));
  BOOST_TEST(!is_mapped(kEffect));
  BOOST_TEST(std::filesystem::exists(dir.path() / "plugins" / "test_effect" / "thread_exited"));

  const std::string fail_start = refusal_of({kEffect, R"({"fail_start":true})"});
  BOOST_TEST_MESSAGE(fail_start);
  BOOST_TEST(contains(fail_start, kEffect));
  BOOST_TEST(contains(fail_start, "fail_start is set"));

  const std::string bad_config = refusal_of({kEffect, R"({"no_such_key":1})"});
  BOOST_TEST(contains(bad_config, "/no_such_key"));
  BOOST_TEST(!is_mapped(kEffect));
}

BOOST_AUTO_TEST_CASE(the_same_plugin_twice_is_refused_by_name) {
  const std::string message = [] {
    TempDir dir;
    try {
      Host host(options_for(dir.path(), {{kEffect}, {kEffect}}));
    } catch (const HostError& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  BOOST_TEST(contains(message, "test_effect"));
  BOOST_TEST(!is_mapped(kEffect));
}

BOOST_AUTO_TEST_CASE(stop_joins_the_plugins_thread) {
  TempDir dir;
  const auto marker = dir.path() / "plugins" / "test_effect" / "thread_exited";
  {
    Host host(options_for(dir.path(), {{kEffect, R"({"start_thread":true,"pending":true})"}}));
    BOOST_TEST(json_bool(host.stats_json(), "/plugins/test_effect/thread_running"));
    host.mutate("a.b");
    host.set_online(true);
    // The worker thread delivers; wait on that condition.
    BOOST_TEST(host.wait_delivered(std::chrono::seconds(30)).value() == 0);
    BOOST_TEST(!std::filesystem::exists(marker));
    host.shutdown();
    // The thread's last act happened before shutdown() returned: it was joined.
    BOOST_TEST(std::filesystem::exists(marker));
    BOOST_TEST(!is_mapped(kEffect));
  }
}

BOOST_AUTO_TEST_CASE(stop_joins_the_thread_through_the_raw_handle) {
  // The same at the plugin_api level, without the host's lanes.
  TempDir dir;
  std::string error;
  auto library = wep::PluginLibrary::open(kEffect, error);
  BOOST_TEST_REQUIRE(library != nullptr, error);
  // A host with no services and no bus.
  const wep::HostApiTable api("test_effect", R"({"start_thread":true,"subscribe":0})", dir.path().string(), {});
  {
    wep::EffectPluginHandle handle(library);
    BOOST_TEST_REQUIRE(handle.create(api.get(), error), error);
    BOOST_TEST_REQUIRE(handle.start(error), error);
    BOOST_TEST(handle.stop(1000) == WEP_OK);
    BOOST_TEST(std::filesystem::exists(dir.path() / "thread_exited"));
  }
  library.reset();
  BOOST_TEST(!is_mapped(kEffect));
}

BOOST_AUTO_TEST_CASE(load_emit_unload_reload_100_times_really_unmaps) {
  TempDir dir;
  for (int cycle = 1; cycle <= 100; ++cycle) {
    Host host(options_for(dir.path(), {{kEffect, R"({"start_thread":true,"pending":true})"}}));
    BOOST_TEST_REQUIRE(is_mapped(kEffect));
    const int64_t sequence = host.mutate("cycle.ran", "{\"n\":" + std::to_string(cycle) + "}");
    BOOST_TEST_REQUIRE(sequence == cycle);  // the event log persists across reloads
    host.set_online(true);
    BOOST_TEST_REQUIRE(host.wait_delivered(std::chrono::seconds(30)).value() == 0);
    BOOST_TEST_REQUIRE(json_int(host.stats_json(), "/plugins/test_effect/delivered") == 1);
    host.shutdown();
    BOOST_TEST_REQUIRE(!is_mapped(kEffect), "cycle " << cycle << ": the plugin is still mapped after unload");
  }
}

BOOST_AUTO_TEST_CASE(a_plugin_built_for_api_1_0_loads_and_works_in_this_host) {
  static_assert(WEP_API_VERSION_MAJOR == 1 && WEP_API_VERSION_MINOR >= 1);
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffectV10, R"({"pending":true})"}}));
  const auto plugins = host.plugins();
  BOOST_TEST_REQUIRE(plugins.size() == 1u);
  BOOST_TEST(plugins[0].name == "test_effect_v1_0");
  BOOST_TEST(plugins[0].api_major == 1);
  BOOST_TEST(plugins[0].api_minor == 0);
  BOOST_TEST(host.mutate("note.created") == 1);
  host.set_setting("analytics_enabled", "false");
  BOOST_TEST(host.pending().value() == 1);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(std::chrono::seconds(30)).value() == 0);
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/plugins/test_effect_v1_0/delivered") == 1);
  BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect_v1_0/analytics_enabled") == "false");
  host.shutdown();
  BOOST_TEST(!is_mapped(kEffectV10));
}

BOOST_AUTO_TEST_CASE(a_host_providing_1_0_refuses_a_plugin_needing_1_1_naming_both_versions) {
  std::string error;
  auto needs_1_1 = wep::PluginLibrary::open(kEffect, error);
  BOOST_TEST_REQUIRE(needs_1_1 != nullptr, error);
  BOOST_TEST(needs_1_1->descriptor().api_minor == WEP_API_VERSION_MINOR);  // the headers' minor: 1.1 or newer
  const auto refusal = wep::api_version_refusal(needs_1_1->descriptor(), kEffect, 1, 0);
  BOOST_TEST_REQUIRE(refusal.has_value());
  BOOST_TEST(contains(*refusal, kEffect));
  BOOST_TEST(contains(*refusal, "built for plugin API 1." + std::to_string(WEP_API_VERSION_MINOR)));
  BOOST_TEST(contains(*refusal, "this host provides 1.0"));
  BOOST_TEST(contains(*refusal, "needs a newer host"));

  auto built_for_1_0 = wep::PluginLibrary::open(kEffectV10, error);
  BOOST_TEST_REQUIRE(built_for_1_0 != nullptr, error);
  BOOST_TEST(!wep::api_version_refusal(built_for_1_0->descriptor(), kEffectV10, 1, 0).has_value());
  BOOST_TEST(wep::api_version_refusal(built_for_1_0->descriptor(), kEffectV10, 2, 0).has_value());
}

BOOST_AUTO_TEST_CASE(plugins_read_the_hosts_event_log_through_api_1_1) {
  TempDir dir;
  {
    Host host(options_for(dir.path()));
    host.set_setting("theme", "\"dark\"");  // before any mutation
    for (int i = 1; i <= 5; ++i) {
      BOOST_TEST(host.mutate("note.created", "{\"i\":" + std::to_string(i) + "}") == i);
      if (i == 2) host.set_setting("analytics_enabled", "false");
      if (i == 3) host.set_setting("analytics_enabled", "true");
    }
  }
  Host host(options_for(dir.path(), {{kEffect, R"({"read_log_after":2})"}}));
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/plugins/test_effect/log_last_sequence") == 5);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/log_read") == 3);  // sequences 3, 4, 5, in order
  BOOST_TEST(json_int(stats, "/plugins/test_effect/out_of_order") == 0);
  // Setting changes in their place among the mutations: the one made after
  // mutation 2 comes first (the log is read after 2), the one after 3 next.
  BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect/log_trace") ==
             "analytics_enabled=false,m3,analytics_enabled=true,m4,m5");

  // Across read chunks (1024 positions each): a change made after mutation
  // 1024 sits between 1024 and 1025, one made after the last mutation ends
  // the log.
  TempDir big;
  {
    Host host(options_for(big.path()));
    for (int i = 1; i <= 1030; ++i) {
      host.mutate("note.created");
      if (i == 1024) host.set_setting("k", "1");
    }
    host.set_setting("k", "2");
  }
  std::string expected;
  for (int i = 1; i <= 1030; ++i) {
    expected += (i == 1 ? "m" : ",m") + std::to_string(i);
    if (i == 1024) expected += ",k=1";
  }
  expected += ",k=2";
  Host replay(options_for(big.path(), {{kEffect, R"({"read_log_after":0})"}}));
  BOOST_TEST(wep::test::json_string(replay.stats_json(), "/plugins/test_effect/log_trace") == expected);

  // A host without an event log says so: the plugin sees none.
  const wep::HostApiTable no_log("test_effect", "{}", dir.path().string(), {});
  BOOST_TEST(no_log.get()->read_event_log(no_log.get()->ctx, 0, nullptr) == WEP_ERR_UNSUPPORTED);
  BOOST_TEST(!wep::Host(no_log.get()).last_mutation_sequence().has_value());
  BOOST_TEST(!wep::Host(no_log.get()).read_event_log(0, [](const wep_event&) { return true; }));

  // A host built for 1.0 has a shorter table: the 1.1 calls are not there.
  wep_host_api older = *no_log.get();
  older.struct_size = offsetof(wep_host_api, read_event_log);
  BOOST_TEST(!WEP_HAS_FIELD(wep_host_api, &older, read_event_log));
  BOOST_TEST(!wep::Host(&older).last_mutation_sequence().has_value());
}

// Every plugin, shipped or test, exports exactly one dynamic symbol: the
// entry point (hidden visibility plus cmake/plugin_exports.map).
BOOST_AUTO_TEST_CASE(every_plugin_exports_only_its_entry_point) {
  for (const std::string& path : {kEffect, kEffectV10, kMajor2, kMinorNewer, kTransport, std::string(WEP_ANALYTICS_PATH),
                                  std::string(WEP_SUPABASE_PATH), std::string(WEP_NDJSON_PATH)}) {
    const std::string command = "nm -D --defined-only '" + path + "'";
    FILE* pipe = popen(command.c_str(), "r");
    BOOST_TEST_REQUIRE(pipe != nullptr);
    std::vector<std::string> exported;
    char line[1024];
    while (fgets(line, sizeof line, pipe)) {
      std::string text(line);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      exported.push_back(text.substr(text.find_last_of(' ') + 1));
    }
    BOOST_TEST_REQUIRE(pclose(pipe) == 0, "nm failed on " << path);
    BOOST_TEST(exported == std::vector<std::string>{"wep_plugin_entry"}, path << " exports " << exported.size());
  }
}
