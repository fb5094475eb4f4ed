// The host-stub config file: schema validation errors name the key;
// relative paths resolve against the config file's folder.
#define BOOST_TEST_MODULE host_config
#include <boost/test/unit_test.hpp>

#include "harness_support.hpp"

using wep::host_stub::HostError;
using wep::host_stub::load_config_file;
using wep::host_stub::parse_config;
using wep::test::TempDir;

namespace {

std::string error_of(const std::string& json) {
  try {
    parse_config(json, "/base");
  } catch (const HostError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_configs_are_refused_naming_the_key) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "config: /data_dir: required key missing"},
      {R"({"data_dir": 5})", "config: /data_dir: expected a string, got an integer"},
      {R"({"data_dir": ""})", "config: /data_dir: must not be empty"},
      {R"({"data_dir": "d", "bogus": 1})", "config: /bogus: unknown key"},
      {R"({"data_dir": "d", "plugins": {}})", "config: /plugins: expected an array, got an object"},
      {R"({"data_dir": "d", "plugins": [{"path": 7}]})", "config: /plugins/0/path: expected a string, got an integer"},
      {R"({"data_dir": "d", "plugins": [{"path": "a.so"}, {}]})", "config: /plugins/1/path: required key missing"},
      {R"({"data_dir": "d", "plugins": [{"path": "a.so", "conf": {}}]})", "config: /plugins/0/conf: unknown key"},
      {R"({"data_dir": "d", "plugins": [{"path": "a.so", "config": []}]})",
       "config: /plugins/0/config: expected an object, got an array"},
      {R"({"data_dir": "d", "settings": {"analytics_enabled": "yes"}})",
       "config: /settings/analytics_enabled: expected a boolean, got a string"},
      {R"({"data_dir": "d", "settings": []})", "config: /settings: expected an object, got an array"},
      {R"({"data_dir": "d", "lane_capacity": 0})", "config: /lane_capacity: must be >= 1"},
      {R"({"data_dir": "d", "plugin_stop_timeout_ms": 1.5})",
       "config: /plugin_stop_timeout_ms: expected an integer, got a number"},
      {R"([1])", "config: /: expected an object, got an array"},
  };
  for (const auto& [json, expected] : cases) {
    const std::string message = error_of(json);
    BOOST_TEST(message == expected, "for " << json << ": got '" << message << "'");
  }
  BOOST_TEST(error_of("{\"data_dir\": ").find("config: /: not valid JSON (offset ") == 0);
}

BOOST_AUTO_TEST_CASE(a_good_config_resolves_relative_paths_against_its_folder) {
  TempDir dir;
  std::filesystem::create_directories(dir / "conf");
  wep::test::write_file(dir / "conf" / "host.json", R"({
    "data_dir": "../data",
    "settings": {"analytics_enabled": false, "theme": {"dark": true}},
    "plugins": [
      {"path": "plugins/liba.so", "config": {"x": [1, 2], "y": "z"}},
      {"path": "/abs/libb.so"}
    ],
    "lane_capacity": 128,
    "plugin_stop_timeout_ms": 250
  })");
  const auto options = load_config_file(dir / "conf" / "host.json");
  BOOST_TEST(options.data_dir == dir / "data");
  BOOST_TEST(options.initial_settings_json.at("analytics_enabled") == "false");
  BOOST_TEST(options.initial_settings_json.at("theme") == R"({"dark":true})");
  BOOST_TEST_REQUIRE(options.plugins.size() == 2u);
  BOOST_TEST(options.plugins[0].path == (dir / "conf" / "plugins" / "liba.so").string());
  BOOST_TEST(options.plugins[0].config_json == R"({"x":[1,2],"y":"z"})");
  BOOST_TEST(options.plugins[1].path == "/abs/libb.so");
  BOOST_TEST(options.plugins[1].config_json == "{}");
  BOOST_TEST(options.lane_capacity == 128u);
  BOOST_TEST(options.plugin_stop_timeout_ms == 250u);
}

BOOST_AUTO_TEST_CASE(a_missing_config_file_is_named) {
  TempDir dir;
  try {
    load_config_file(dir / "missing.json");
    BOOST_FAIL("accepted a missing file");
  } catch (const HostError& e) {
    BOOST_TEST(std::string(e.what()).find("missing.json") != std::string::npos);
  }
}
