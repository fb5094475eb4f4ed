// The loopback PostgREST-speaking HTTPS backend (see backend.hpp).
#include "wep/test_backend/backend.hpp"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <wep/support/bounded_json.hpp>

#include "postgrest_insert_body_schema.h"

namespace wep::test {

const TestCertificates& test_certificates() {
  static const TestCertificates certificates = [] {
    const std::string dir = WEP_TEST_CERTS_DIR;
    TestCertificates c;
    c.ca_file = dir + "/ca.pem";
    c.server_cert = dir + "/server.pem";
    c.server_key = dir + "/server.key";
    c.untrusted_ca_file = dir + "/untrusted_ca.pem";
    c.untrusted_server_cert = dir + "/untrusted_server.pem";
    c.untrusted_server_key = dir + "/untrusted_server.key";
    c.other_host_cert = dir + "/other_host.pem";
    c.other_host_key = dir + "/other_host.key";
    return c;
  }();
  return certificates;
}

namespace {

constexpr const char* kRestPrefix = "/rest/v1/";

std::string compact_json(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

// PostgREST's error object: code, details, hint, message.
std::string error_body(const std::string& code, const std::string& message, const std::string& details = "",
                       const std::string& hint = "") {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  auto text_or_null = [&](const std::string& text) {
    text.empty() ? writer.Null() : writer.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  };
  writer.StartObject();
  writer.Key("code");
  writer.String(code.c_str(), static_cast<rapidjson::SizeType>(code.size()));
  writer.Key("details");
  text_or_null(details);
  writer.Key("hint");
  text_or_null(hint);
  writer.Key("message");
  writer.String(message.c_str(), static_cast<rapidjson::SizeType>(message.size()));
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

// What PostgREST 12 (behind Supabase's gateway) answers with `status` for a
// typical cause of it, as {code, details, hint, message}.
std::string postgrest_error_for(int status, const std::string& table) {
  switch (status) {
    case 400:
      return error_body("PGRST204", "Could not find the 'properties' column of '" + table + "' in the schema cache");
    case 401:
      return error_body("42501", "permission denied for table " + table);
    case 403:
      return error_body("42501", "new row violates row-level security policy for table \"" + table + "\"");
    case 404:
      return error_body("PGRST205", "Could not find the table 'public." + table + "' in the schema cache", "",
                        "Perhaps you meant the table 'public.analytics_event'");
    case 409:
      return error_body("23505", "duplicate key value violates unique constraint \"" + table + "_event_id_key\"");
    case 500:
      return error_body("57014", "canceling statement due to statement timeout");
    case 503:
      return error_body("PGRST001", "Database client error. Retrying the connection.", "no connection to the server");
    case 504:
      return error_body("PGRST003", "Timed out acquiring connection from connection pool.");
    default:
      return error_body("PGRST000", "injected status " + std::to_string(status));
  }
}

constexpr const char* kCaptivePortalPage =
    "<!DOCTYPE html><html><head><title>Sign in to Wi-Fi</title></head>"
    "<body><h1>Welcome!</h1><p>Please accept the terms to continue.</p></body></html>";

void write_row(rapidjson::Writer<rapidjson::StringBuffer>& writer, const StoredRow& row) {
  writer.StartObject();
  writer.Key("event_id");
  writer.String(row.event_id.c_str(), static_cast<rapidjson::SizeType>(row.event_id.size()));
  writer.Key("event_type");
  writer.String(row.event_type.c_str(), static_cast<rapidjson::SizeType>(row.event_type.size()));
  writer.Key("properties");
  writer.RawValue(row.properties_json.c_str(), row.properties_json.size(), rapidjson::kObjectType);
  writer.Key("user_id");
  if (row.user_id)
    writer.String(row.user_id->c_str(), static_cast<rapidjson::SizeType>(row.user_id->size()));
  else
    writer.Null();
  writer.Key("created_at");
  writer.String(row.created_at.c_str(), static_cast<rapidjson::SizeType>(row.created_at.size()));
  writer.EndObject();
}

// Parses one row object that already passed the body schema.
StoredRow row_from_json(const rapidjson::Value& item) {
  StoredRow row;
  row.event_id = item["event_id"].GetString();
  row.event_type = item["event_type"].GetString();
  row.properties_json = item["properties"].IsNull() ? "null" : compact_json(item["properties"]);
  if (item["user_id"].IsString()) row.user_id = std::string(item["user_id"].GetString());
  row.created_at = item["created_at"].GetString();
  return row;
}

}  // namespace

// The faults set_fault() turns on; each applies to every insert request.
struct StandingFaults {
  std::string spec;                    // the last spec set, for the request log
  int status = 0;                      // answer every insert with this status (0: off)
  bool html = false;                   // ... with an HTML page instead of PostgREST's error object
  std::string retry_after;             // ... with this Retry-After
  bool reset = false;                  // reset every insert's connection without a reply
  std::chrono::milliseconds hold{0};   // hold every reply this long first
  std::string statement_timeout_type;  // a batch with this event type gets 500 57014
};

struct Backend::Impl {
  explicit Impl(BackendOptions opts) : options(std::move(opts)), pool(2, options.max_threads) {}

  BackendOptions options;

  // ---- state, guarded by `mutex`; `changed` is notified after every change
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::vector<StoredRow> stored;
  std::unordered_map<std::string, size_t> index_by_event_id;
  Counters counters;
  std::vector<std::string> violations;
  std::optional<ReceivedRequest> last_insert;
  std::ofstream persist;
  bool stopping = false;

  // ---- faults (guarded by `mutex`)
  int fail_count = 0;
  int fail_status = 0;
  int throttle_count = 0;
  std::string retry_after;
  size_t max_body_bytes = 0;
  std::string rejected_event_type;
  int rejected_status = 400;
  int reset_before_count = 0;
  int reset_after_count = 0;
  int delay_count = 0;
  int delay_after_store_count = 0;
  std::chrono::milliseconds delay{0};
  uint64_t release_generation = 0;
  StandingFaults standing;  // set_fault(): apply to every insert until cleared

  // ---- immutable after construction
  std::unique_ptr<rapidjson::SchemaDocument> body_schema;
  std::mutex body_schema_mutex;  // one validation at a time (see refuse_body)
  Poco::ThreadPool pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  uint16_t port = 0;
  bool stopped = false;  // guarded by stop_mutex
  std::mutex stop_mutex;

  void load_persisted_rows();
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  void handle_insert(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                     uint64_t request_number, std::string& log_detail);
  // Each step of an insert answers (and returns true) when it ends the request.
  bool refuse_contract_breach(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                              std::string& log_detail);
  bool apply_faults(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                    std::string& log_detail);
  bool refuse_body(const std::string& body, rapidjson::Document& document, Poco::Net::HTTPServerResponse& response,
                   std::string& log_detail);
  void store_rows(const rapidjson::Document& document, uint64_t request_number, Poco::Net::HTTPServerRequest& request,
                  Poco::Net::HTTPServerResponse& response, std::string& log_detail);
  void respond(Poco::Net::HTTPServerResponse& response, int status, const std::string& body,
               const std::string& content_type = "application/json");
  void reset_connection(Poco::Net::HTTPServerRequest& request);
  void violation(const std::string& why) {
    std::lock_guard lock(mutex);
    ++counters.contract_violations;
    violations.push_back(why);
  }
  void notify() { changed.notify_all(); }
  // Holds the calling request for `hold`, or until release_delayed() or
  // stop(); counted as delayed. `lock` holds `mutex` and is released meanwhile.
  void hold_request(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds hold) {
    ++counters.delayed;
    ++counters.delayed_in_progress;
    notify();
    const uint64_t generation = release_generation;
    changed.wait_for(lock, hold, [&] { return stopping || release_generation != generation; });
    --counters.delayed_in_progress;
  }
  std::string rows_json_locked() const;
};

namespace {

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit RequestHandler(Backend::Impl& impl) : impl_(impl) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    impl_.handle(request, response);
  }

 private:
  Backend::Impl& impl_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(Backend::Impl& impl) : impl_(impl) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new RequestHandler(impl_);
  }

 private:
  Backend::Impl& impl_;
};

// Counts accepted connections (every connection passes the filter once).
class ConnectionCounter final : public Poco::Net::TCPServerConnectionFilter {
 public:
  explicit ConnectionCounter(Backend::Impl& impl) : impl_(impl) {}
  bool accept(const Poco::Net::StreamSocket&) override {
    {
      std::lock_guard lock(impl_.mutex);
      ++impl_.counters.connections;
    }
    impl_.notify();
    return true;
  }

 private:
  Backend::Impl& impl_;
};

bool prefer_has(const std::string& prefer, const std::string& token) {
  std::istringstream in(prefer);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (Poco::trim(part) == token) return true;
  }
  return false;
}

}  // namespace

void Backend::Impl::respond(Poco::Net::HTTPServerResponse& response, int status, const std::string& body,
                            const std::string& content_type) {
  {
    std::lock_guard lock(mutex);
    ++counters.responses_by_status[status];
  }
  response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  if (!body.empty()) response.setContentType(content_type);
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  std::ostream& out = response.send();
  out.write(body.data(), static_cast<std::streamsize>(body.size()));
  out.flush();
}

void Backend::Impl::reset_connection(Poco::Net::HTTPServerRequest& request) {
  {
    std::lock_guard lock(mutex);
    ++counters.resets;
  }
  auto& socket = static_cast<Poco::Net::HTTPServerRequestImpl&>(request).socket();
  socket.setLinger(true, 0);  // closing then sends RST, not FIN
  if (options.plain_http) {
    socket.shutdown();
  } else {
    Poco::Net::SecureStreamSocket secure(socket);
    secure.abort();  // no TLS close_notify: the client sees the connection die
  }
}

std::string Backend::Impl::rows_json_locked() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartArray();
  for (const auto& row : stored) write_row(writer, row);
  writer.EndArray();
  return {buffer.GetString(), buffer.GetSize()};
}

void Backend::Impl::handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
  uint64_t request_number = 0;
  {
    std::lock_guard lock(mutex);
    request_number = ++counters.requests;
  }
  // Waiters re-check their condition however this request ends.
  struct NotifyOnExit {
    Impl& impl;
    ~NotifyOnExit() { impl.notify(); }
  } notify_on_exit{*this};
  std::string log_detail;
  const std::string method = request.getMethod();
  const Poco::URI uri(request.getURI());
  const std::string& path = uri.getPath();
  const std::string table = path.rfind(kRestPrefix, 0) == 0 ? path.substr(std::string(kRestPrefix).size()) : "";

  if (table.empty()) {
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(request.stream(), sink);
    respond(response, 404, error_body("PGRST000", "unknown path " + path));
    log_detail = "unknown path";
  } else if (method == Poco::Net::HTTPRequest::HTTP_GET) {
    if (table != options.table) {
      respond(response, 404, error_body("42P01", "relation \"public." + table + "\" does not exist"));
    } else {
      std::string body;
      {
        std::lock_guard lock(mutex);
        body = rows_json_locked();
      }
      respond(response, 200, body);
    }
  } else if (method != Poco::Net::HTTPRequest::HTTP_POST) {
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(request.stream(), sink);
    violation("method " + method + " is not part of the contract");
    respond(response, 405, error_body("PGRST000", "method not allowed"));
  } else if (table != options.table) {
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(request.stream(), sink);
    respond(response, 404, error_body("42P01", "relation \"public." + table + "\" does not exist"));
    log_detail = "unknown table " + table;
  } else {
    handle_insert(request, response, request_number, log_detail);
  }

  if (options.request_log) {
    std::string line = "#" + std::to_string(request_number) + " " + method + " " + request.getURI() + " -> ";
    line += response.sent() ? std::to_string(static_cast<int>(response.getStatus())) : std::string("reset");
    if (!log_detail.empty()) line += " (" + log_detail + ")";
    options.request_log(line);
  }
}

void Backend::Impl::handle_insert(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                                  uint64_t request_number, std::string& log_detail) {
  std::string body;
  Poco::StreamCopier::copyToString(request.stream(), body);

  ReceivedRequest received;
  received.method = request.getMethod();
  received.uri = request.getURI();
  for (const auto& [name, value] : request) received.headers[Poco::toLower(name)] = value;
  received.body = body;
  {
    std::lock_guard lock(mutex);
    ++counters.insert_requests;
    last_insert = received;
  }
  if (refuse_contract_breach(request, response, log_detail)) return;
  if (apply_faults(request, response, log_detail)) return;
  rapidjson::Document document;
  if (refuse_body(body, document, response, log_detail)) return;
  store_rows(document, request_number, request, response, log_detail);
}

// The contract: query, key, headers (see backend.hpp).
bool Backend::Impl::refuse_contract_breach(Poco::Net::HTTPServerRequest& request,
                                           Poco::Net::HTTPServerResponse& response, std::string& log_detail) {
  const Poco::URI uri(request.getURI());
  const auto query = uri.getQueryParameters();
  if (query.size() != 1 || query[0].first != "on_conflict" || query[0].second != "event_id") {
    violation("query must be exactly on_conflict=event_id, got '" + uri.getRawQuery() + "'");
    respond(response, 400, error_body("PGRST100", "\"failed to parse filter\" (" + uri.getRawQuery() + ")"));
    log_detail = "bad query";
    return true;
  }
  const std::string api_key = request.get("apikey", "");
  if (api_key.empty()) {
    violation("the apikey header is required");
    respond(response, 401,
            R"({"message":"No API key found in request","hint":"No `apikey` request header or url param was found."})");
    log_detail = "missing key";
    return true;
  }
  const bool key_is_jwt = options.api_key.rfind("eyJ", 0) == 0;
  const std::string authorization = request.get("Authorization", "");
  if (key_is_jwt && authorization.empty()) {
    violation("a JWT api key is sent as Authorization: Bearer too");
    respond(response, 401, error_body("PGRST301", "JWT required"));
    log_detail = "missing bearer";
    return true;
  }
  if (api_key != options.api_key || (!authorization.empty() && authorization != "Bearer " + options.api_key)) {
    respond(response, 401,
            R"({"message":"Invalid API key","hint":"Double check your Supabase `anon` or `service_role` API key."})");
    log_detail = "wrong key";
    return true;
  }
  std::string content_type = request.get("Content-Type", "");
  content_type = Poco::toLower(Poco::trim(content_type.substr(0, content_type.find(';'))));
  if (content_type != "application/json") {
    violation("Content-Type must be application/json, got '" + request.get("Content-Type", "") + "'");
    respond(response, 415, error_body("PGRST107", "Content-Type not acceptable: " + request.get("Content-Type", "")));
    log_detail = "bad content type";
    return true;
  }
  const std::string prefer = request.get("Prefer", "");
  if (!prefer_has(prefer, "return=minimal") || !prefer_has(prefer, "resolution=ignore-duplicates")) {
    violation("Prefer must hold return=minimal and resolution=ignore-duplicates, got '" + prefer + "'");
    respond(response, 400, error_body("PGRST000", "unexpected Prefer header: " + prefer));
    log_detail = "bad Prefer";
    return true;
  }
  return false;
}

// "Next N" faults first (one each, in the order of backend.hpp), then the
// standing ones (set_fault).
bool Backend::Impl::apply_faults(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                                 std::string& log_detail) {
  enum class Fault { none, reset_before, delay, status, throttle };
  Fault fault = Fault::none;
  int status = 0;
  std::string retry_after_value;
  std::chrono::milliseconds hold{0};
  StandingFaults standing_now;
  {
    std::lock_guard lock(mutex);
    standing_now = standing;
    if (reset_before_count > 0) {
      --reset_before_count;
      fault = Fault::reset_before;
    } else if (delay_count > 0) {
      --delay_count;
      fault = Fault::delay;
      hold = delay;
    } else if (fail_count > 0) {
      --fail_count;
      fault = Fault::status;
      status = fail_status;
    } else if (throttle_count > 0) {
      --throttle_count;
      fault = Fault::throttle;
      retry_after_value = retry_after;
    }
  }
  switch (fault) {
    case Fault::reset_before:
      reset_connection(request);
      log_detail = "injected reset before reply";
      return true;
    case Fault::delay: {
      std::unique_lock lock(mutex);
      hold_request(lock, hold);
      log_detail = "held " + std::to_string(hold.count()) + " ms; ";
      break;
    }
    case Fault::status:
      respond(response, status, postgrest_error_for(status, options.table));
      log_detail = "injected status";
      return true;
    case Fault::throttle:
      response.set("Retry-After", retry_after_value);
      respond(response, 429, error_body("PGRST000", "too many requests"));
      log_detail = "injected 429, Retry-After: " + retry_after_value;
      return true;
    case Fault::none:
      break;
  }
  if (standing_now.reset) {
    reset_connection(request);
    log_detail = "fault reset-all";
    return true;
  }
  if (standing_now.status != 0) {
    if (!standing_now.retry_after.empty()) response.set("Retry-After", standing_now.retry_after);
    if (standing_now.html) {
      respond(response, standing_now.status, kCaptivePortalPage, "text/html; charset=utf-8");
    } else {
      respond(response, standing_now.status, postgrest_error_for(standing_now.status, options.table));
    }
    log_detail = "fault " + standing_now.spec;
    return true;
  }
  if (standing_now.hold.count() > 0) {
    std::unique_lock lock(mutex);
    hold_request(lock, standing_now.hold);
    log_detail = "fault " + standing_now.spec + "; ";
  }
  return false;
}

// The body: size, JSON, the insert-body schema, and rows refused by rule.
bool Backend::Impl::refuse_body(const std::string& body, rapidjson::Document& document,
                                Poco::Net::HTTPServerResponse& response, std::string& log_detail) {
  size_t body_limit = 0;
  std::string rejected_type, poison_type;
  int rejected_with = 400;
  {
    std::lock_guard lock(mutex);
    body_limit = max_body_bytes;
    rejected_type = rejected_event_type;
    rejected_with = rejected_status;
    poison_type = standing.statement_timeout_type;
  }
  if (body_limit > 0 && body.size() > body_limit) {
    respond(response, 413, error_body("PGRST413", "payload too large: " + std::to_string(body.size()) + " bytes"));
    log_detail += "too large";
    return true;
  }
  const wep::json::ParseOutcome parsed =
      wep::json::parse_document<rapidjson::kParseValidateEncodingFlag>(document, body);
  if (!parsed.ok()) {
    const std::string why = "body is not valid JSON: " + parsed.message();
    violation(why);
    respond(response, 400, error_body("PGRST102", "Empty or invalid json", why));
    log_detail += "bad JSON";
    return true;
  }
  std::string schema_violation;
  {
    // rapidjson 1.1's regex (the schema's "pattern" keywords) keeps its match
    // state inside the SchemaDocument: one validation at a time.
    std::lock_guard schema_lock(body_schema_mutex);
    rapidjson::SchemaValidator validator(*body_schema);
    if (!document.Accept(validator)) {
      rapidjson::StringBuffer pointer;
      validator.GetInvalidDocumentPointer().StringifyUriFragment(pointer);
      schema_violation = std::string("body breaks the schema at ") + pointer.GetString() + " (keyword '" +
                         validator.GetInvalidSchemaKeyword() + "')";
    }
  }
  if (!schema_violation.empty()) {
    violation(schema_violation);
    respond(response, 400, error_body("PGRST102", "Empty or invalid json", schema_violation));
    log_detail += "schema violation";
    return true;
  }
  for (const auto& item : document.GetArray()) {
    const std::string type = item["event_type"].GetString();
    if (!rejected_type.empty() && type == rejected_type) {
      // What PostgREST answers for a row the database refuses: 22P02 invalid
      // input (400), 23505 unique violation (409).
      respond(response, rejected_with,
              rejected_with == 409 ? postgrest_error_for(409, options.table)
                                   : error_body("22P02", "invalid input syntax for type uuid: \"" + type + "\""));
      log_detail += "rejected event type " + rejected_type;
      return true;
    }
    if (!poison_type.empty() && type == poison_type) {
      respond(response, 500, postgrest_error_for(500, options.table));
      log_detail += "statement timeout for event type " + poison_type;
      return true;
    }
  }
  return false;
}

// Stores the rows, ignoring ids already held, then answers 201 (or the
// "after the store" faults).
void Backend::Impl::store_rows(const rapidjson::Document& document, uint64_t request_number,
                               Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                               std::string& log_detail) {
  size_t stored_now = 0;
  size_t duplicates_now = 0;
  bool reset_after = false;
  {
    std::unique_lock lock(mutex);
    for (const auto& item : document.GetArray()) {
      StoredRow row = row_from_json(item);
      row.request_number = request_number;
      if (index_by_event_id.count(row.event_id)) {
        ++duplicates_now;
        continue;
      }
      index_by_event_id.emplace(row.event_id, stored.size());
      if (persist.is_open()) {
        rapidjson::StringBuffer line;
        rapidjson::Writer<rapidjson::StringBuffer> writer(line);
        write_row(writer, row);
        persist << line.GetString() << '\n';
      }
      stored.push_back(std::move(row));
      ++stored_now;
    }
    if (persist.is_open()) persist.flush();
    counters.rows_stored += stored_now;
    counters.duplicates_ignored += duplicates_now;
    if (reset_after_count > 0) {
      --reset_after_count;
      reset_after = true;
    } else if (delay_after_store_count > 0) {
      --delay_after_store_count;
      hold_request(lock, delay);
      log_detail += "reply held " + std::to_string(delay.count()) + " ms after the store; ";
    }
  }
  log_detail += "stored " + std::to_string(stored_now) + ", duplicates " + std::to_string(duplicates_now);
  if (reset_after) {
    reset_connection(request);
    log_detail += ", injected reset after store";
    return;
  }
  respond(response, 201, "");
}

void Backend::Impl::load_persisted_rows() {
  if (options.persist_file.empty()) return;
  {
    std::ifstream in(options.persist_file);
    std::string line;
    while (std::getline(in, line)) {
      rapidjson::Document document;
      if (!wep::json::parse_document(document, line).ok() || !document.IsObject() || !document.HasMember("event_id"))
        continue;  // torn line
      rapidjson::Document array;
      array.SetArray();
      array.PushBack(document, array.GetAllocator());
      rapidjson::SchemaValidator validator(*body_schema);
      if (!array.Accept(validator)) continue;
      StoredRow row = row_from_json(array[0]);
      if (index_by_event_id.count(row.event_id)) continue;
      index_by_event_id.emplace(row.event_id, stored.size());
      stored.push_back(std::move(row));
    }
  }
  persist.open(options.persist_file, std::ios::app);
  if (!persist) throw std::runtime_error("test backend: cannot open persist_file " + options.persist_file);
}

Backend::Backend(BackendOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  // A client that gives up mid-reply must not kill the process with SIGPIPE
  // (OpenSSL writes without MSG_NOSIGNAL). Process-wide: fine in tests.
  std::signal(SIGPIPE, SIG_IGN);

  rapidjson::Document schema;
  schema.Parse(postgrest_insert_body_schema);
  if (schema.HasParseError()) throw std::runtime_error("test backend: the embedded body schema is not JSON");
  impl_->body_schema = std::make_unique<rapidjson::SchemaDocument>(schema);
  impl_->load_persisted_rows();

  const auto& certs = test_certificates();
  const std::string cert = impl_->options.cert_file.empty() ? certs.server_cert : impl_->options.cert_file;
  const std::string key = impl_->options.key_file.empty() ? certs.server_key : impl_->options.key_file;
  try {
    const Poco::Net::SocketAddress address("127.0.0.1", impl_->options.port);
    // Bound exclusively: SO_REUSEADDR (a restart need not wait out
    // TIME_WAIT) but never SO_REUSEPORT, which Poco's (address, backlog)
    // constructors set and which lets a second server "start" on a busy port.
    Poco::Net::ServerSocket socket;
    if (impl_->options.plain_http) {
      socket.bind(address, /*reuseAddress=*/true, /*reusePort=*/false);
    } else {
      Poco::Net::Context::Ptr context =
          new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key, cert, "", Poco::Net::Context::VERIFY_NONE);
      context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
      Poco::Net::SecureServerSocket secure(context);
      secure.bind(address, /*reuseAddress=*/true, /*reusePort=*/false);
      socket = secure;
    }
    socket.listen(64);
    impl_->port = socket.address().port();

    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(0);  // unlimited
    params->setKeepAliveTimeout(Poco::Timespan(30, 0));
    params->setTimeout(Poco::Timespan(30, 0));
    params->setMaxQueued(64);
    params->setMaxThreads(impl_->options.max_threads);
    impl_->server = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(*impl_), impl_->pool, socket, params);
    impl_->server->setConnectionFilter(new ConnectionCounter(*impl_));
    impl_->server->start();
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("test backend: cannot start: " + e.displayText());
  }
}

Backend::~Backend() { stop(); }

void Backend::stop() {
  std::lock_guard stop_lock(impl_->stop_mutex);
  if (impl_->stopped) return;
  impl_->stopped = true;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;  // ends held replies
  }
  impl_->notify();
  // Lets the request in progress on each connection finish (held replies end
  // at once), then shuts every connection down; joins the connection threads.
  impl_->server->stopAll(false);
  impl_->pool.joinAll();
}

uint16_t Backend::port() const { return impl_->port; }
std::string Backend::url() const {
  return (impl_->options.plain_http ? "http" : "https") + std::string("://localhost:") + std::to_string(impl_->port);
}
std::string Backend::ip_url() const {
  return (impl_->options.plain_http ? "http" : "https") + std::string("://127.0.0.1:") + std::to_string(impl_->port);
}
const std::string& Backend::api_key() const { return impl_->options.api_key; }
const std::string& Backend::table() const { return impl_->options.table; }

void Backend::update(const std::function<void(Impl&)>& change) {
  std::lock_guard lock(impl_->mutex);
  change(*impl_);
}

void Backend::fail_next(int count, int status) {
  update([&](Impl& i) {
    i.fail_count = count;
    i.fail_status = status;
  });
}

void Backend::throttle_next(int count, const std::string& retry_after) {
  update([&](Impl& i) {
    i.throttle_count = count;
    i.retry_after = retry_after;
  });
}

void Backend::set_max_body_bytes(size_t max_bytes) {
  update([&](Impl& i) { i.max_body_bytes = max_bytes; });
}

void Backend::reject_event_type(const std::string& event_type, int status) {
  update([&](Impl& i) {
    i.rejected_event_type = event_type;
    i.rejected_status = status;
  });
}

void Backend::reset_before_reply_next(int count) {
  update([&](Impl& i) { i.reset_before_count = count; });
}

void Backend::reset_after_store_next(int count) {
  update([&](Impl& i) { i.reset_after_count = count; });
}

void Backend::delay_next(int count, std::chrono::milliseconds delay) {
  update([&](Impl& i) {
    i.delay_count = count;
    i.delay = delay;
  });
}

void Backend::delay_reply_after_store_next(int count, std::chrono::milliseconds delay) {
  update([&](Impl& i) {
    i.delay_after_store_count = count;
    i.delay = delay;
  });
}

const char* Backend::fault_help() {
  return "  400-all              every insert: 400 PGRST204 (a missing column: the same for every row)\n"
         "  503-all              every insert: 503 PGRST001, no Retry-After\n"
         "  retry-after-0        every insert: 503 with Retry-After: 0\n"
         "  retry-after-past     every insert: 503 with Retry-After: an HTTP-date a day ago\n"
         "  retry-after:<value>  every insert: 503 with Retry-After: <value>\n"
         "  status:<code>        every insert: <code> with PostgREST's error object for it (status:200: an\n"
         "                       empty 200, which is not PostgREST's 201)\n"
         "  status:<code>-html   every insert: <code> with an HTML page (status:200-html: a captive portal)\n"
         "  slow:<ms>            every insert: held <ms> before it is processed\n"
         "  reset-all            every insert: the connection reset without a reply\n"
         "  reject-type:<type>   a batch with a row of event type <type>: 400 22P02\n"
         "  timeout-type:<type>  a batch with a row of event type <type>: 500 57014 (statement timeout)\n"
         "  max-body:<bytes>     bodies larger than <bytes>: 413\n"
         "  none                 clears every fault\n";
}

void Backend::set_fault(const std::string& spec) {
  auto number = [&](const std::string& text, long low, long high) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || value < low || value > high)
      throw std::invalid_argument("fault '" + spec + "': '" + text + "' is not a number in " + std::to_string(low) +
                                  ".." + std::to_string(high));
    return value;
  };
  auto argument = [&](const std::string& prefix) -> std::optional<std::string> {
    if (spec.rfind(prefix, 0) != 0) return std::nullopt;
    const std::string value = spec.substr(prefix.size());
    if (value.empty()) throw std::invalid_argument("fault '" + spec + "': a value is missing after '" + prefix + "'");
    return value;
  };
  std::lock_guard lock(impl_->mutex);
  StandingFaults& f = impl_->standing;
  if (spec == "none") {
    f = StandingFaults{};
    impl_->max_body_bytes = 0;
    impl_->rejected_event_type.clear();
    return;
  }
  StandingFaults next = f;
  next.spec = spec;
  if (spec == "400-all") {
    next.status = 400;
  } else if (spec == "503-all") {
    next.status = 503;
  } else if (spec == "retry-after-0") {
    next.status = 503, next.retry_after = "0";
  } else if (spec == "retry-after-past") {
    const Poco::Timestamp a_day_ago = Poco::Timestamp() - Poco::Timespan(1, 0, 0, 0, 0);
    next.status = 503, next.retry_after = Poco::DateTimeFormatter::format(a_day_ago, Poco::DateTimeFormat::HTTP_FORMAT);
  } else if (auto value = argument("retry-after:")) {
    next.status = 503, next.retry_after = *value;
  } else if (auto value = argument("status:")) {
    const bool html = value->size() > 5 && value->compare(value->size() - 5, 5, "-html") == 0;
    next.status = static_cast<int>(number(html ? value->substr(0, value->size() - 5) : *value, 100, 599));
    next.html = html;
  } else if (auto value = argument("slow:")) {
    next.hold = std::chrono::milliseconds(number(*value, 1, 3'600'000));
  } else if (spec == "reset-all") {
    next.reset = true;
  } else if (auto value = argument("reject-type:")) {
    impl_->rejected_event_type = *value;
    impl_->rejected_status = 400;
  } else if (auto value = argument("timeout-type:")) {
    next.statement_timeout_type = *value;
  } else if (auto value = argument("max-body:")) {
    impl_->max_body_bytes = static_cast<size_t>(number(*value, 1, 1L << 40));
  } else {
    throw std::invalid_argument("unknown fault '" + spec + "' (see --help)");
  }
  f = next;
}

void Backend::release_delayed() {
  {
    std::lock_guard lock(impl_->mutex);
    ++impl_->release_generation;
  }
  impl_->notify();
}

void Backend::clear_faults() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->fail_count = 0;
    impl_->throttle_count = 0;
    impl_->max_body_bytes = 0;
    impl_->rejected_event_type.clear();
    impl_->rejected_status = 400;
    impl_->reset_before_count = 0;
    impl_->reset_after_count = 0;
    impl_->delay_count = 0;
    impl_->delay_after_store_count = 0;
    impl_->standing = StandingFaults{};
    ++impl_->release_generation;
  }
  impl_->notify();
}

Counters Backend::counters() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->counters;
}

std::vector<StoredRow> Backend::rows() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stored;
}

size_t Backend::row_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stored.size();
}

std::optional<StoredRow> Backend::row(const std::string& event_id) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->index_by_event_id.find(event_id);
  if (it == impl_->index_by_event_id.end()) return std::nullopt;
  return impl_->stored[it->second];
}

std::optional<ReceivedRequest> Backend::last_insert_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_insert;
}

std::vector<std::string> Backend::contract_violations() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->violations;
}

bool Backend::wait_until(const std::function<bool(const Counters&)>& condition,
                         std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return condition(impl_->counters); });
}

bool Backend::wait_for_rows(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->stored.size() >= count; });
}

std::string Backend::rows_json() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->rows_json_locked();
}

}  // namespace wep::test
