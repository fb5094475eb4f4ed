// The loopback backend itself, driven by a bare Poco HTTPS client: it holds
// clients to the contract (headers, query, body schema), stores rows once,
// serves them back, persists them, and counts what it saw.
#define BOOST_TEST_MODULE test_backend
#include "wep/test_backend/backend.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>

#include <boost/test/unit_test.hpp>
#include <map>
#include <thread>

#include "transport_test_support.hpp"

using wep::test::Backend;
using wep::test::BackendOptions;

namespace {

struct Reply {
  int status = 0;
  std::string body;
};

// A client that trusts the test CA through OpenSSL only (no SSLManager).
class Client {
 public:
  explicit Client(const Backend& backend) {
    Poco::Net::Context::Params params;
    params.caLocation = wep::test::test_certificates().ca_file;
    params.verificationMode = Poco::Net::Context::VERIFY_NONE;  // this suite tests the server, not TLS
    context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
    session_ = std::make_unique<Poco::Net::HTTPSClientSession>("127.0.0.1", backend.port(), context_);
    session_->setKeepAlive(true);
  }

  Reply request(const std::string& method, const std::string& uri, const std::map<std::string, std::string>& headers,
                const std::string& body) {
    Poco::Net::HTTPRequest request(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : headers) request.set(name, value);
    if (method == "POST") request.setContentLength(static_cast<std::streamsize>(body.size()));
    session_->sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    Reply reply;
    Poco::StreamCopier::copyToString(session_->receiveResponse(response), reply.body);
    reply.status = response.getStatus();
    return reply;
  }

 private:
  Poco::Net::Context::Ptr context_;
  std::unique_ptr<Poco::Net::HTTPSClientSession> session_;
};

const std::string kUri = "/rest/v1/analytics_events?on_conflict=event_id";

std::map<std::string, std::string> good_headers() {
  return {{"apikey", "test-anon-key"},
          {"Authorization", "Bearer test-anon-key"},
          {"Content-Type", "application/json"},
          {"Prefer", "return=minimal, resolution=ignore-duplicates"}};
}

std::string row_json(int n, const std::string& properties = "{\"n\":1}") {
  return "{\"event_id\":\"" + wep::test::event_id_for(n) + "\",\"event_type\":\"e\",\"properties\":" + properties +
         ",\"user_id\":null,\"created_at\":\"2026-11-20T10:00:00.123Z\"}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(stores_a_valid_batch_once_and_serves_it_back) {
  Backend backend;
  Client client(backend);
  const std::string body = "[" + row_json(1) + "," + row_json(2, "null") + "]";
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 201);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 201);
  const auto counters = backend.counters();
  BOOST_CHECK_EQUAL(counters.rows_stored, 2u);
  BOOST_CHECK_EQUAL(counters.duplicates_ignored, 2u);
  BOOST_CHECK_EQUAL(counters.responses_by_status.at(201), 2u);
  BOOST_CHECK(backend.contract_violations().empty());

  const Reply listed = client.request("GET", "/rest/v1/analytics_events", {}, "");
  BOOST_CHECK_EQUAL(listed.status, 200);
  BOOST_CHECK_EQUAL(listed.body, body);
  BOOST_CHECK_EQUAL(backend.rows_json(), body);
}

BOOST_AUTO_TEST_CASE(holds_clients_to_the_contract) {
  Backend backend;
  Client client(backend);
  const std::string body = "[" + row_json(1) + "]";
  struct Case {
    std::string what;
    std::string uri;
    std::map<std::string, std::string> headers;
    std::string body;
    int status;
  };
  auto without = [](const std::string& name) {
    auto headers = good_headers();
    headers.erase(name);
    return headers;
  };
  auto with = [](const std::string& name, const std::string& value) {
    auto headers = good_headers();
    headers[name] = value;
    return headers;
  };
  const std::vector<Case> cases = {
      {"no on_conflict", "/rest/v1/analytics_events", good_headers(), body, 400},
      {"no apikey", kUri, without("apikey"), body, 401},
      {"no Prefer", kUri, without("Prefer"), body, 400},
      {"half a Prefer", kUri, with("Prefer", "return=minimal"), body, 400},
      {"text body", kUri, with("Content-Type", "text/plain"), body, 415},
      {"not JSON", kUri, good_headers(), "[{", 400},
      {"empty array", kUri, good_headers(), "[]", 400},
      {"properties as a string", kUri, good_headers(), "[" + row_json(1, "\"{}\"") + "]", 400},
      {"bad uuid", kUri, good_headers(),
       "[{\"event_id\":\"x\",\"event_type\":\"e\",\"properties\":null,\"user_id\":null,\"created_at\":\"2026-11-20T10:"
       "00:00Z\"}]",
       400},
      {"local time", kUri, good_headers(), "[" + row_json(1).replace(row_json(1).find(".123Z"), 5, "+01:00") + "]",
       400},
      {"missing key", kUri, good_headers(),
       "[{\"event_id\":\"" + wep::test::event_id_for(1) +
           "\",\"event_type\":\"e\",\"properties\":null,\"created_at\":\"2026-11-20T10:00:00Z\"}]",
       400},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) { BOOST_CHECK_EQUAL(client.request("POST", c.uri, c.headers, c.body).status, c.status); }
  }
  BOOST_CHECK_EQUAL(backend.row_count(), 0u);
  BOOST_CHECK_EQUAL(backend.counters().contract_violations, cases.size());
  BOOST_CHECK_EQUAL(backend.contract_violations().size(), cases.size());

  // A wrong key is a 401 but not a contract violation; another table is a 404.
  BOOST_CHECK_EQUAL(client.request("POST", kUri, with("apikey", "other"), body).status, 401);
  BOOST_CHECK_EQUAL(client.request("POST", "/rest/v1/other?on_conflict=event_id", good_headers(), body).status, 404);
  BOOST_CHECK_EQUAL(backend.counters().contract_violations, cases.size());
}

BOOST_AUTO_TEST_CASE(next_n_faults_apply_once_each) {
  Backend backend;
  Client client(backend);
  const std::string body = "[" + row_json(1) + "]";
  backend.fail_next(2, 503);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 503);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 503);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 201);
  backend.throttle_next(1, "3");
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 429);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 201);
  backend.set_max_body_bytes(10);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 413);
  backend.clear_faults();
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), body).status, 201);
  const auto counters = backend.counters();
  BOOST_CHECK_EQUAL(counters.responses_by_status.at(503), 2u);
  BOOST_CHECK_EQUAL(counters.responses_by_status.at(429), 1u);
  BOOST_CHECK_EQUAL(counters.responses_by_status.at(413), 1u);
  BOOST_CHECK_EQUAL(counters.rows_stored, 1u);
  BOOST_CHECK_EQUAL(counters.duplicates_ignored, 2u);
}

BOOST_AUTO_TEST_CASE(persisted_rows_survive_a_restart) {
  wep::test::TempDir dir;
  BackendOptions options;
  options.persist_file = (dir.path() / "rows.ndjson").string();
  {
    Backend backend(options);
    Client client(backend);
    BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), "[" + row_json(1) + "," + row_json(2) + "]").status,
                      201);
  }
  Backend backend(options);
  BOOST_CHECK_EQUAL(backend.row_count(), 2u);
  Client client(backend);
  BOOST_CHECK_EQUAL(client.request("POST", kUri, good_headers(), "[" + row_json(2) + "," + row_json(3) + "]").status,
                    201);
  BOOST_CHECK_EQUAL(backend.row_count(), 3u);
  BOOST_CHECK_EQUAL(backend.counters().duplicates_ignored, 1u);
}

BOOST_AUTO_TEST_CASE(stop_ends_held_replies) {
  Backend backend;
  backend.delay_next(1, std::chrono::hours(1));
  std::thread client_thread([&] {
    try {
      Client client(backend);
      client.request("POST", kUri, good_headers(), "[" + row_json(1) + "]");
    } catch (const std::exception&) {
      // the connection may be shut down under the request: fine
    }
  });
  BOOST_REQUIRE(backend.wait_until([](const auto& c) { return c.delayed_in_progress == 1; }, std::chrono::seconds(20)));
  backend.stop();  // must not wait an hour
  client_thread.join();
  BOOST_CHECK_EQUAL(backend.counters().delayed_in_progress, 0u);
}
