// The host's stores: event log, identity, settings; bad input refused.
#define BOOST_TEST_MODULE host_stores
#include <Poco/UUID.h>

#include <boost/test/unit_test.hpp>

#include "harness_support.hpp"

using wep::host_stub::Host;
using wep::host_stub::HostError;
using wep::test::json_string;
using wep::test::options_for;
using wep::test::TempDir;

namespace {
const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;

// A canonical (lower-case) RFC 4122 UUID of version 4 (random).
bool is_uuid_v4(const std::string& id) {
  Poco::UUID uuid;
  return uuid.tryParse(id) && uuid.toString() == id && uuid.version() == Poco::UUID::UUID_RANDOM && uuid.variant() == 2;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const HostError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

BOOST_AUTO_TEST_CASE(identity_is_a_uuid_v4_and_survives_a_restart) {
  TempDir dir;
  std::string first;
  {
    Host host(options_for(dir.path()));
    first = host.pseudonymous_id();
  }
  BOOST_TEST(is_uuid_v4(first), first);
  {
    Host host(options_for(dir.path(), {{kEffect}}));
    BOOST_TEST(host.pseudonymous_id() == first);
    BOOST_TEST(json_string(host.stats_json(), "/plugins/test_effect/pseudonymous_id") == first);
  }
  TempDir other;
  Host host(options_for(other.path()));
  BOOST_TEST(host.pseudonymous_id() != first);
}

BOOST_AUTO_TEST_CASE(event_log_sequences_continue_after_a_restart) {
  TempDir dir;
  {
    Host host(options_for(dir.path()));
    BOOST_TEST(host.mutate("a") == 1);
    BOOST_TEST(host.mutate("b", R"({"x":[1,2]})") == 2);
  }
  Host host(options_for(dir.path()));
  BOOST_TEST(host.mutate("c") == 3);
  BOOST_TEST(std::filesystem::exists(dir.path() / "host.db"));
}

BOOST_AUTO_TEST_CASE(analytics_enabled_defaults_to_true_and_persists) {
  TempDir dir;
  {
    Host host(options_for(dir.path()));
    BOOST_TEST(host.setting_json("analytics_enabled").value() == "true");
    BOOST_TEST(!host.setting_json("no_such_setting").has_value());
    host.set_setting("analytics_enabled", "false");
    host.set_setting("theme", R"( {"dark": true} )");
    BOOST_TEST(host.setting_json("analytics_enabled").value() == "false");
  }
  // Restart with a config whose initial value says true: the persisted value wins.
  auto options = options_for(dir.path(), {{kEffect}});
  options.initial_settings_json["analytics_enabled"] = "true";
  Host host(options);
  BOOST_TEST(host.setting_json("analytics_enabled").value() == "false");
  BOOST_TEST(host.setting_json("theme").value() == R"({"dark":true})");
  BOOST_TEST(json_string(host.stats_json(), "/plugins/test_effect/analytics_enabled") == "false");
}

BOOST_AUTO_TEST_CASE(initial_settings_apply_when_never_persisted) {
  TempDir dir;
  auto options = options_for(dir.path(), {{kEffect}});
  options.initial_settings_json["analytics_enabled"] = "false";
  {
    Host host(options);
    BOOST_TEST(host.setting_json("analytics_enabled").value() == "false");
    // The plugin reads it at start through the host api.
    BOOST_TEST(json_string(host.stats_json(), "/plugins/test_effect/analytics_enabled") == "false");
  }
  options.initial_settings_json["analytics_enabled"] = "true";  // not persisted: the config decides
  Host host(options);
  BOOST_TEST(host.setting_json("analytics_enabled").value() == "true");
}

BOOST_AUTO_TEST_CASE(bad_settings_are_refused_naming_the_key) {
  TempDir dir;
  Host host(options_for(dir.path()));
  BOOST_TEST(error_of([&] { host.set_setting("analytics_enabled", "\"yes\""); }).find("analytics_enabled") !=
             std::string::npos);
  BOOST_TEST(error_of([&] { host.set_setting("theme", "{oops"); }).find("theme") != std::string::npos);
  BOOST_TEST(!error_of([&] { host.set_setting("", "1"); }).empty());
  BOOST_TEST(!error_of([&] { host.set_setting("two words", "1"); }).empty());
  BOOST_TEST(host.setting_json("analytics_enabled").value() == "true");  // unchanged

  TempDir other;
  auto options = options_for(other.path());
  options.initial_settings_json["analytics_enabled"] = "1";
  BOOST_TEST(error_of([&] { Host bad(options); }).find("analytics_enabled") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_mutations_are_refused_and_the_host_goes_on) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  BOOST_TEST(!error_of([&] { host.mutate(""); }).empty());
  BOOST_TEST(!error_of([&] { host.mutate("two words"); }).empty());
  BOOST_TEST(!error_of([&] { host.mutate("tab\there"); }).empty());
  BOOST_TEST(!error_of([&] { host.mutate(std::string(201, 'x')); }).empty());
  BOOST_TEST(error_of([&] { host.mutate("a", "[1,2]"); }).find("object") != std::string::npos);
  BOOST_TEST(error_of([&] { host.mutate("a", "{\"x\":"); }).find("invalid JSON") != std::string::npos);
  BOOST_TEST(!error_of([&] { host.mutate("a", "{} trailing"); }).empty());
  BOOST_TEST(!error_of([&] { host.mutate("a", "{\"s\":\"\xff\"}"); }).empty());  // not UTF-8
  // Nothing was committed or published by the refusals.
  BOOST_TEST(host.mutate("a") == 1);
  BOOST_TEST(host.pending().value() == 1);
}

BOOST_AUTO_TEST_CASE(an_unusable_data_dir_is_refused_naming_it) {
  TempDir dir;
  wep::test::write_file(dir / "file", "not a folder");
  const std::string message = error_of([&] { Host host(options_for(dir / "file")); });
  BOOST_TEST_MESSAGE(message);
  BOOST_TEST(message.find((dir / "file").string()) != std::string::npos);
  BOOST_TEST(!error_of([&] { Host host(options_for("")); }).empty());
}
