// Deeply nested JSON on every way into the host stub: commands (mutate, set,
// load, reload), in-process and through the real executable. RapidJSON's
// recursive parser overflowed the stack at about 90,000 levels; now each is
// refused with `error: ... nested deeper than 64 levels ...` and the host
// goes on answering.
#define BOOST_TEST_MODULE host_deep_nesting
#include <boost/test/unit_test.hpp>
#include <wep/test/child_process.hpp>

#include "harness_support.hpp"

using wep::host_stub::CommandInterpreter;
using wep::host_stub::Host;
using wep::test::options_for;
using wep::test::TempDir;
using wep::test::write_file;
using wep::test::ChildProcess;

namespace {

const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;
const std::string kHostStub = HOST_STUB_PATH;

// `depth` nested arrays around 0: "[[[0]]]" for 3.
std::string nested_arrays(size_t depth) { return std::string(depth, '[') + "0" + std::string(depth, ']'); }
// {"a": <depth - 1 nested arrays>}: `depth` levels in all.
std::string object_around(size_t depth) { return "{\"a\":" + nested_arrays(depth - 1) + "}"; }

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool refused_as_too_deep(const std::string& answer) {
  return starts_with(answer, "error: ") && answer.find("nested deeper than 64 levels") != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(deep_commands_answer_error_in_process_and_the_host_goes_on) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  CommandInterpreter interpreter(host);
  bool quit = false;
  const std::string deep_payload = object_around(90'000);  // about 180 KB, under the 1 MiB payload cap
  BOOST_TEST(deep_payload.size() < 1024u * 1024u);
  for (const std::string& line :
       {"mutate x " + deep_payload, "set foo " + nested_arrays(90'000), "mutate x " + object_around(65),
        "set foo " + nested_arrays(65), "load " + kEffect + " " + object_around(100'000),
        "reload test_effect " + object_around(100'000)}) {
    const std::string answer = interpreter.execute(line, quit);
    BOOST_TEST_INFO("command of " << line.size() << " bytes: " << line.substr(0, 40));
    BOOST_TEST(refused_as_too_deep(answer), answer.substr(0, 200));
  }
  BOOST_TEST(!quit);
  // The limit itself is accepted, and the host answers as before.
  BOOST_TEST(interpreter.execute("mutate x " + object_around(64), quit) == "ok 1");
  BOOST_TEST(interpreter.execute("set foo " + nested_arrays(64), quit) == "ok");
  BOOST_TEST(interpreter.execute("mutate note.created {\"chars\": 3}", quit) == "ok 2");
  BOOST_TEST(interpreter.execute("pending", quit) == "pending 2");
}

BOOST_AUTO_TEST_CASE(deep_commands_answer_error_from_the_executable_which_then_exits_cleanly) {
  TempDir dir;
  write_file(dir.path() / "host.json",
             R"({"data_dir": "data", "plugins": [{"path": ")" + kEffect + R"(", "config": {"pending": true}}]})");
  ChildProcess child(kHostStub, {"--config", (dir.path() / "host.json").string()}, dir.path() / "stderr.txt");
  BOOST_TEST(refused_as_too_deep(child.command("mutate x " + object_around(90'000))));
  BOOST_TEST(refused_as_too_deep(child.command("set foo " + nested_arrays(90'000))));
  BOOST_TEST(refused_as_too_deep(child.command("mutate x {\"a\":" + std::string(500'000, '['))));
  BOOST_TEST(child.command("mutate note.created {\"chars\": 3}") == "ok 1");
  BOOST_TEST(child.command("pending") == "pending 1");
  BOOST_TEST(child.command("quit") == "bye");
  BOOST_TEST(child.wait_exit().value_or(-1000) == 0);
}

BOOST_AUTO_TEST_CASE(a_deep_host_config_is_refused_with_a_message) {
  TempDir dir;
  write_file(dir.path() / "host.json", R"({"data_dir": "data", "settings": {"x": )" + nested_arrays(200'000) + "}}");
  ChildProcess child(kHostStub, {"--config", (dir.path() / "host.json").string()}, dir.path() / "stderr.txt");
  BOOST_TEST(child.wait_exit().value_or(-1000) == 2);
  const std::string stderr_text = wep::test::read_file(dir.path() / "stderr.txt");
  BOOST_TEST(stderr_text.find("nested deeper than 64 levels") != std::string::npos, stderr_text);
}
