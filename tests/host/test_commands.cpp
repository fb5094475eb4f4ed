// The host-stub command protocol, in-process (CommandInterpreter) and
// against the real `host-stub` executable as a child process.
#define BOOST_TEST_MODULE host_commands
#include <signal.h>

#include <boost/test/unit_test.hpp>
#include <wep/test/child_process.hpp>

#include "harness_support.hpp"

using wep::host_stub::CommandInterpreter;
using wep::host_stub::Host;
using wep::test::json_int;
using wep::test::options_for;
using wep::test::read_file;
using wep::test::TempDir;
using wep::test::write_file;
using wep::test::ChildProcess;

namespace {

const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;
const std::string kHostStub = HOST_STUB_PATH;

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

std::string config_with_plugin(const std::string& plugin_config) {
  return R"({"data_dir": "data", "settings": {"analytics_enabled": true},
             "plugins": [{"path": ")" +
         kEffect + R"(", "config": )" + plugin_config + "}]}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(in_process_commands_and_malformed_lines) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  CommandInterpreter interpreter(host);
  bool quit = false;
  const std::vector<std::pair<std::string, std::string>> script = {
      {"mutate note.created", "ok 1"},
      {"  mutate   note.created   {\"chars\": 12}  ", "ok 2"},
      {"mutate note.edited {\"a\":1}\r", "ok 3"},
      {"pending", "pending 3"},
      {"wait-delivered 0", "pending 3"},
      {"online", "ok"},
      {"wait-delivered 30000", "pending 0"},
      {"offline", "ok"},
      {"set analytics_enabled false", "ok"},
      {"sleep 0", "ok"},
      {"sleep 1", "ok"},
  };
  for (const auto& [line, expected] : script) BOOST_TEST(interpreter.execute(line, quit) == expected, line);
  BOOST_TEST(host.setting_json("analytics_enabled").value() == "false");
  BOOST_TEST(!host.is_online());

  const std::vector<std::string> malformed = {
      "",
      "   ",
      "frobnicate",
      "MUTATE a",
      "mutate",
      "mutate a [1]",
      "mutate a {bad json",
      "mutate a \"str\"",
      "mutate a {} {}",
      "online now",
      "offline 1",
      "set",
      "set analytics_enabled",
      "set analytics_enabled maybe",
      "set analytics_enabled 1",
      "pending please",
      "wait-delivered",
      "wait-delivered abc",
      "wait-delivered -5",
      "wait-delivered 10ms",
      "wait-delivered 99999999999999999999",
      "sleep",
      "sleep x",
      "sleep 3600001",
      "stats now",
      "quit now",
      std::string("mutate a\0b", 10),
  };
  for (const auto& line : malformed) {
    const std::string answer = interpreter.execute(line, quit);
    BOOST_TEST(starts_with(answer, "error: "), "'" << line << "' -> '" << answer << "'");
  }
  BOOST_TEST(!quit);
  // The host went on: the bad lines committed nothing.
  BOOST_TEST(interpreter.execute("mutate after.errors", quit) == "ok 4");

  const std::string stats = interpreter.execute("stats", quit);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/mutations") == 4);
  BOOST_TEST(json_int(stats, "/effects/event_log/mutations") == 4);

  BOOST_TEST(interpreter.execute("quit", quit) == "bye");
  BOOST_TEST(quit);
}

BOOST_AUTO_TEST_CASE(plugins_load_unload_and_reload_through_commands) {
  TempDir dir;
  Host host(options_for(dir.path()));  // starts with no plugin
  CommandInterpreter interpreter(host);
  bool quit = false;
  BOOST_TEST(interpreter.execute("plugins", quit) == "[]");
  BOOST_TEST(interpreter.execute("load " + kEffect + R"( {"pending": true})", quit) == "ok test_effect");
  const std::string listed = interpreter.execute("plugins", quit);
  BOOST_TEST(wep::test::json_string(listed, "/0/name") == "test_effect");
  BOOST_TEST(wep::test::json_string(listed, "/0/file") == kEffect);
  BOOST_TEST(wep::test::json_string(listed, "/0/state") == "running");
  BOOST_TEST(wep::test::json_string(listed, "/0/api") ==
             std::to_string(WEP_API_VERSION_MAJOR) + "." + std::to_string(WEP_API_VERSION_MINOR));
  BOOST_TEST(!wep::test::json_string(listed, "/0/version").empty());
  BOOST_TEST(interpreter.execute("mutate a", quit) == "ok 1");
  BOOST_TEST(interpreter.execute("pending", quit) == "pending 1");
  BOOST_TEST(interpreter.execute(R"(reload test_effect {"pending": true, "subscribe": 1})", quit) == "ok");
  BOOST_TEST(interpreter.execute("pending", quit) == "pending 0");  // a new instance
  BOOST_TEST(interpreter.execute("mutate b", quit) == "ok 2");
  BOOST_TEST(interpreter.execute("reload test_effect", quit) == "ok");  // same config again
  BOOST_TEST(interpreter.execute("mutate c", quit) == "ok 3");
  BOOST_TEST(json_int(interpreter.execute("stats", quit), "/plugins/test_effect/last_sequence") == 3);
  BOOST_TEST(interpreter.execute("unload test_effect", quit) == "ok");
  BOOST_TEST(!wep::test::is_mapped(kEffect));
  BOOST_TEST(interpreter.execute("plugins", quit) == "[]");

  const std::vector<std::string> malformed = {
      "load",
      "load /no/such/plugin.so",
      "load " + kEffect + " [1]",
      "load " + kEffect + " {bad json",
      "load " + kEffect + R"( {"no_such_key": 1})",
      "unload",
      "unload test_effect",
      "unload a b",
      "reload",
      "reload nothing_loaded",
      "plugins now",
  };
  for (const auto& line : malformed) {
    const std::string answer = interpreter.execute(line, quit);
    BOOST_TEST(starts_with(answer, "error: "), "'" << line << "' -> '" << answer << "'");
  }
  BOOST_TEST(interpreter.execute("plugins", quit) == "[]");
  BOOST_TEST(!wep::test::is_mapped(kEffect));
  BOOST_TEST(interpreter.execute("load " + kEffect, quit) == "ok test_effect");
  const std::string refused = interpreter.execute(R"(reload test_effect {"fail_start": true})", quit);
  BOOST_TEST(starts_with(refused, "error: "), refused);
  BOOST_TEST(refused.find("fail_start is set") != std::string::npos, refused);
  BOOST_TEST(wep::test::json_string(interpreter.execute("plugins", quit), "/0/state") == "running");
  BOOST_TEST(interpreter.execute("mutate d", quit) == "ok 4");
  BOOST_TEST(!quit);
}

BOOST_AUTO_TEST_CASE(pending_answers_an_error_while_no_plugin_answers) {
  TempDir dir;
  bool quit = false;
  {
    Host host(options_for(dir.path()));  // no plugin at all
    CommandInterpreter interpreter(host);
    BOOST_TEST(starts_with(interpreter.execute("pending", quit), "error: "));
    BOOST_TEST(starts_with(interpreter.execute("wait-delivered 10", quit), "error: "));
    BOOST_TEST(interpreter.execute("mutate a", quit) == "ok 1");
  }
  TempDir other;
  Host host(options_for(other.path(), {{kEffect, R"({"pending":false})"}}));  // a plugin without a queue
  CommandInterpreter interpreter(host);
  BOOST_TEST(starts_with(interpreter.execute("pending", quit), "error: "));
}

BOOST_AUTO_TEST_CASE(interrupt_cuts_a_long_sleep_short) {
  TempDir dir;
  Host host(options_for(dir.path()));
  CommandInterpreter interpreter(host);
  interpreter.interrupt();  // before: the next sleep returns at once
  bool quit = false;
  BOOST_TEST(interpreter.execute("sleep 3600000", quit) == "ok");
}

BOOST_AUTO_TEST_CASE(the_executable_answers_the_protocol_and_exits_0) {
  TempDir dir;
  write_file(dir / "host.json", config_with_plugin(R"({"pending": true, "start_thread": true})"));
  {
    ChildProcess child(kHostStub, {"--config", (dir / "host.json").string()}, dir / "stderr.txt");
    BOOST_TEST(child.command("mutate note.created {\"chars\": 3}") == "ok 1");
    BOOST_TEST(child.command("mutate note.deleted") == "ok 2");
    BOOST_TEST(starts_with(child.command("mutate bad [1]"), "error: "));
    BOOST_TEST(starts_with(child.command("what is this"), "error: "));
    BOOST_TEST(child.command("").rfind("error: ", 0) == 0);
    BOOST_TEST(child.command("pending") == "pending 2");
    BOOST_TEST(child.command("online") == "ok");
    BOOST_TEST(child.command("wait-delivered 30000") == "pending 0");
    BOOST_TEST(child.command("set analytics_enabled false") == "ok");
    BOOST_TEST(child.command("sleep 1") == "ok");
    const std::string stats = child.command("stats");
    BOOST_TEST(json_int(stats, "/plugins/test_effect/delivered") == 2);
    BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect/analytics_enabled") == "false");
    BOOST_TEST(child.command("quit") == "bye");
    BOOST_TEST(!child.read_line().has_value());  // nothing after bye
    BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
  }
  // Relative data_dir resolved against the config's folder; plugin thread joined.
  BOOST_TEST(std::filesystem::exists(dir / "data" / "host.db"));
  BOOST_TEST(std::filesystem::exists(dir / "data" / "plugins" / "test_effect" / "thread_exited"));
  BOOST_TEST(read_file(dir / "stderr.txt").find("[test_effect] info: started") != std::string::npos);

  // A restart continues the event log and keeps the setting.
  ChildProcess child(kHostStub, {"--config", (dir / "host.json").string()}, dir / "stderr2.txt");
  BOOST_TEST(child.command("mutate again") == "ok 3");
  child.close_stdin();  // end of input acts as quit
  BOOST_TEST(child.read_line().value_or("") == "bye");
  BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
}

BOOST_AUTO_TEST_CASE(the_executable_loads_reloads_and_unloads_plugins) {
  TempDir dir;
  write_file(dir / "host.json", R"({"data_dir": "data"})");
  ChildProcess child(kHostStub, {"--config", (dir / "host.json").string()}, dir / "stderr.txt");
  BOOST_TEST(child.command("load " + kEffect + R"( {"pending": true, "start_thread": true})") == "ok test_effect");
  BOOST_TEST(child.command("mutate one") == "ok 1");
  BOOST_TEST(child.command("reload test_effect") == "ok");
  BOOST_TEST(wep::test::json_string(child.command("plugins"), "/0/state") == "running");
  BOOST_TEST(starts_with(child.command("reload"), "error: "));
  BOOST_TEST(starts_with(child.command("load /nowhere/libx.so"), "error: "));
  BOOST_TEST(child.command("unload test_effect") == "ok");
  BOOST_TEST(child.command("plugins") == "[]");
  BOOST_TEST(child.command("quit") == "bye");
  BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
  const std::string log = read_file(dir / "stderr.txt");
  BOOST_TEST(log.find("reloaded plugin 'test_effect'") != std::string::npos, log);
  BOOST_TEST(log.find("unloaded plugin 'test_effect'") != std::string::npos, log);
}

BOOST_AUTO_TEST_CASE(the_executable_answers_a_last_line_without_newline_at_eof) {
  TempDir dir;
  write_file(dir / "host.json", R"({"data_dir": "data"})");
  ChildProcess child(kHostStub, {"--config", (dir / "host.json").string()}, dir / "stderr.txt");
  child.write_raw("mutate one\nmutate two");
  child.close_stdin();
  BOOST_TEST(child.read_line().value_or("") == "ok 1");
  BOOST_TEST(child.read_line().value_or("") == "ok 2");
  BOOST_TEST(child.read_line().value_or("") == "bye");
  BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
}

BOOST_AUTO_TEST_CASE(the_executable_refuses_a_bad_config_with_exit_2_naming_the_key) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"data_dir": "d", "plugins": [{"path": 1}]})", "/plugins/0/path"},
      {R"({"plugins": []})", "/data_dir"},
      {R"({"data_dir": "d", "settings": {"analytics_enabled": "no"}})", "/settings/analytics_enabled"},
      {R"({"data_dir": "d", "plugins": [{"path": "libmissing.so"}]})", "libmissing.so"},
      {R"({"data_dir": "d", "extra": true})", "/extra"},
      {"not json", "not valid JSON"},
  };
  int index = 0;
  for (const auto& [json, named] : cases) {
    const auto config = dir / ("bad" + std::to_string(index++) + ".json");
    write_file(config, json);
    const auto stderr_file = dir / ("stderr" + std::to_string(index) + ".txt");  // this child's only
    ChildProcess child(kHostStub, {"--config", config.string()}, stderr_file);
    BOOST_TEST(child.wait_exit().value_or(-1000) == 2, json);
    BOOST_TEST(!child.read_line().has_value(), json);  // nothing on stdout
    const std::string errors = read_file(stderr_file);
    BOOST_TEST(errors.find(named) != std::string::npos, json << " -> " << errors);
  }
  ChildProcess missing(kHostStub, {"--config", (dir / "nope.json").string()}, dir / "stderr.txt");
  BOOST_TEST(missing.wait_exit().value_or(-1000) == 2);
  ChildProcess no_args(kHostStub, {}, dir / "stderr.txt");
  BOOST_TEST(no_args.wait_exit().value_or(-1000) == 2);
  ChildProcess help(kHostStub, {"--help"}, dir / "stderr.txt");
  BOOST_TEST(starts_with(help.read_line().value_or(""), "usage: host-stub"));
  BOOST_TEST(help.wait_exit().value_or(-1000) == 0);
}

BOOST_AUTO_TEST_CASE(the_executable_shuts_down_cleanly_on_sigterm_and_sigint) {
  for (int signal_number : {SIGTERM, SIGINT}) {
    TempDir dir;
    write_file(dir / "host.json", config_with_plugin(R"({"start_thread": true})"));
    ChildProcess child(kHostStub, {"--config", (dir / "host.json").string()}, dir / "stderr.txt");
    BOOST_TEST(child.command("mutate a") == "ok 1");
    child.write_line("sleep 3600000");  // a long command: the signal must cut it short
    ::kill(child.pid(), signal_number);
    BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
    BOOST_TEST(std::filesystem::exists(dir / "data" / "plugins" / "test_effect" / "thread_exited"));
  }
}
