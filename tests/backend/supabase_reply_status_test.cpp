// Regression tests for replies found by fuzz/fuzz_transport_reply: status
// codes that Poco's HTTPStatus enum does not hold. Under UBSan, reading such
// a code through HTTPResponse::getStatus() was undefined behaviour ("load of
// value 899, which is not a valid value for type HTTPStatus"); the transport
// must answer with a verdict naming the code.
#define BOOST_TEST_MODULE supabase_reply_status
#include <boost/test/unit_test.hpp>

#include "wep/test_backend/backend.hpp"
#include "transport_test_support.hpp"

using wep::test::Backend;
using wep::test::LoadedTransport;
using wep::test::Rows;
using wep::test::TempDir;
using wep::test::test_certificates;

BOOST_AUTO_TEST_CASE(status_codes_outside_the_http_status_enum_get_a_verdict) {
  Backend backend;
  TempDir data_dir;
  LoadedTransport transport(WEP_SUPABASE_PATH,
                            "{\"url\":\"" + backend.url() + "\",\"api_key\":\"" + backend.api_key() +
                                "\",\"ca_file\":\"" + test_certificates().ca_file + "\"}",
                            data_dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  for (const int status : {899, 600, 999, 299, 512}) {
    backend.fail_next(1, status);
    Rows rows;
    rows.add(static_cast<uint64_t>(status));
    const wep::test::Outcome outcome = transport.send(rows);
    BOOST_TEST_INFO("status " << status << ": " << wep::test::verdict_name(outcome.kind) << " " << outcome.reason);
    BOOST_TEST(outcome.http_status == status);
    BOOST_TEST(outcome.kind != WEP_VERDICT_DELIVERED);  // only PostgREST's 201 is delivered
    BOOST_TEST(outcome.reason.find(std::to_string(status)) != std::string::npos);
  }
}
