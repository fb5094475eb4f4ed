// test-backend as a tool: standing faults (the same specs as its --fault
// command line), PostgREST's error objects, an exclusive bind, validation
// under concurrent requests, and the executable's --help and --fault.
#define BOOST_TEST_MODULE test_backend_faults
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "wep/test_backend/backend.hpp"
#include "transport_test_support.hpp"

extern char** environ;

using wep::test::Backend;
using wep::test::BackendOptions;

namespace {

struct Reply {
  int status = 0;
  std::string retry_after;
  std::string content_type;
  std::string body;
};

const std::string kUri = "/rest/v1/analytics_events?on_conflict=event_id";

std::string body_of(int first, int count, const std::string& event_type = "e") {
  std::string body = "[";
  for (int n = first; n < first + count; ++n) {
    if (n > first) body += ',';
    body += "{\"event_id\":\"" + wep::test::event_id_for(static_cast<uint64_t>(n)) + "\",\"event_type\":\"" +
            event_type + "\",\"properties\":{\"n\":" + std::to_string(n) +
            "},\"user_id\":\"u\",\"created_at\":\"2026-11-20T10:00:00.123Z\"}";
  }
  return body + "]";
}

// One plain-HTTP insert (the backend runs with plain_http: this suite tests
// the server, not TLS).
Reply post(uint16_t port, const std::string& body) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, kUri, Poco::Net::HTTPMessage::HTTP_1_1);
  request.set("apikey", "test-anon-key");
  request.setContentType("application/json");
  request.set("Prefer", "return=minimal, resolution=ignore-duplicates");
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  Reply reply;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), reply.body);
  reply.status = response.getStatus();
  reply.retry_after = response.get("Retry-After", "");
  reply.content_type = response.getContentType();
  return reply;
}

BackendOptions plain() {
  BackendOptions options;
  options.plain_http = true;
  return options;
}

// test-backend as a process: stdin a pipe (its lifeline), stdout read.
struct Process {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string output;

  explicit Process(const std::vector<std::string>& args) {
    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 2);
    std::vector<std::string> all = {TEST_BACKEND_PATH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    in = in_pipe[1];
    out = out_pipe[0];
    if (rc != 0) throw std::runtime_error("cannot start test-backend");
  }
  ~Process() {
    if (in >= 0) ::close(in);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(out);
  }
  // Reads until `needle` appears in the output or EOF / the timeout.
  bool read_until(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output.find(needle) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buffer[1024];
      const ssize_t n = ::read(out, buffer, sizeof buffer);
      if (n <= 0) return output.find(needle) != std::string::npos;
      output.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }
  // Closes stdin and waits for the exit status (-1 on a signal or timeout).
  int finish() {
    read_until("\x01", std::chrono::seconds(0));
    if (in >= 0) ::close(in);
    in = -1;
    read_until("\x01", std::chrono::seconds(20));  // to EOF
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(standing_faults_answer_every_insert_like_postgrest) {
  Backend backend(plain());
  struct Case {
    const char* spec;
    int status;
    const char* in_body;
    const char* retry_after;  // "" for none, "*" for any date
  };
  const Case cases[] = {
      {"400-all", 400, "\"code\":\"PGRST204\"", ""},
      {"503-all", 503, "\"code\":\"PGRST001\"", ""},
      {"retry-after-0", 503, "PGRST001", "0"},
      {"retry-after-past", 503, "PGRST001", "*"},
      {"retry-after:Wed, 21 Oct 2015 07:28:00 GMT", 503, "PGRST001", "Wed, 21 Oct 2015 07:28:00 GMT"},
      {"status:500", 500, "\"code\":\"57014\"", ""},
      {"status:504", 504, "PGRST003", ""},
      {"status:200-html", 200, "<!DOCTYPE html>", ""},
      {"status:401", 401, "42501", ""},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.spec) {
      backend.set_fault(c.spec);
      const Reply reply = post(backend.port(), body_of(1, 2));
      BOOST_TEST(reply.status == c.status);
      BOOST_TEST(reply.body.find(c.in_body) != std::string::npos, reply.body);
      if (std::string(c.retry_after) == "*") {
        BOOST_TEST(reply.retry_after.find("GMT") != std::string::npos, reply.retry_after);
      } else {
        BOOST_TEST(reply.retry_after == c.retry_after);
      }
      if (c.status != 200) {
        // PostgREST's error object: code, details, hint, message.
        BOOST_TEST(reply.body.find("\"details\"") != std::string::npos);
        BOOST_TEST(reply.body.find("\"hint\"") != std::string::npos);
        BOOST_TEST(reply.body.find("\"message\"") != std::string::npos);
      }
      backend.set_fault("none");
    }
  }
  BOOST_TEST(backend.row_count() == 0u);
  backend.set_fault("timeout-type:poison");
  BOOST_TEST(post(backend.port(), body_of(1, 2, "poison")).status == 500);
  BOOST_TEST(post(backend.port(), body_of(1, 2)).status == 201);
  backend.set_fault("reject-type:bad");
  const Reply refused = post(backend.port(), body_of(3, 1, "bad"));
  BOOST_TEST(refused.status == 400);
  BOOST_TEST(refused.body.find("22P02") != std::string::npos, refused.body);
  backend.set_fault("max-body:100");
  BOOST_TEST(post(backend.port(), body_of(4, 3)).status == 413);
  backend.set_fault("none");
  BOOST_TEST(post(backend.port(), body_of(4, 3)).status == 201);
  BOOST_TEST(backend.row_count() == 5u);
}

BOOST_AUTO_TEST_CASE(unknown_or_malformed_fault_specs_are_refused) {
  Backend backend(plain());
  for (const char* spec : {"", "bogus", "status:", "status:99", "status:abc", "status:700-html", "slow:-1",
                           "max-body:x", "reject-type:", "400-all-please"})
    BOOST_CHECK_THROW(backend.set_fault(spec), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_second_backend_on_a_busy_port_does_not_start) {
  Backend first(plain());
  BackendOptions same = plain();
  same.port = first.port();
  BOOST_CHECK_THROW(Backend second(same), std::runtime_error);
  BackendOptions same_tls;
  same_tls.port = first.port();
  BOOST_CHECK_THROW(Backend third(same_tls), std::runtime_error);
  BOOST_TEST(post(first.port(), body_of(1, 1)).status == 201);  // the first one still serves
}

BOOST_AUTO_TEST_CASE(validation_is_safe_under_concurrent_requests) {
  BackendOptions options = plain();
  options.max_threads = 8;
  Backend backend(options);
  constexpr int kThreads = 8, kRequests = 25, kRows = 10;
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        if (post(backend.port(), body_of((t * kRequests + r) * kRows, kRows)).status == 201) ++created;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(created.load() == kThreads * kRequests);
  BOOST_TEST(backend.row_count() == static_cast<size_t>(kThreads * kRequests * kRows));
  BOOST_TEST(backend.contract_violations().empty());
}

BOOST_AUTO_TEST_CASE(the_executable_lists_its_faults_and_takes_them_on_the_command_line) {
  {
    Process help({"--help"});
    BOOST_TEST(help.finish() == 0);
    for (const char* spec : {"--fault SPEC", "400-all", "retry-after-0", "retry-after-past", "status:<code>-html",
                             "status:200-html", "timeout-type:<type>", "slow:<ms>", "reset-all"})
      BOOST_TEST(help.output.find(spec) != std::string::npos, spec);
  }
  {
    const auto& certs = wep::test::test_certificates();
    Process bad({"--cert", certs.server_cert, "--key", certs.server_key, "--fault", "bogus"});
    BOOST_TEST(bad.finish() == 2);
    BOOST_TEST(bad.output.find("unknown fault 'bogus'") != std::string::npos, bad.output);
  }
}
